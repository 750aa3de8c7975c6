"""Decode kernels: attention over a packed, per-head slimmed KV plus a tail; slimming selection; the tail append."""
