"""Variable-length (packed segments) non-causal attention, for the vision tower's windows and frame groups."""
