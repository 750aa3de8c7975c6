"""Fused rewrites installed at load time: text norms, rotary and MLP, the vision tower's block and attention, NF4 linears."""
