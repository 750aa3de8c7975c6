"""Decoding: the per-question slimmed KV, the static decode step (CUDA graph), the token loop."""
