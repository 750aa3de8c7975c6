"""Per-layer elementwise kernels: RMSNorm, SiLU * up, text and vision rotary, each with its reference beside it."""
