"""`bench prefill` (kernel level: OmniSparse vs SDPA, recall) and `bench prefill-e2e` (a 7B-shaped prefill, by part)."""
