"""FP8 (e4m3) prefill linears: per-row quantization (a Triton kernel), the `torch._scaled_mm` launcher; the emulation reference."""
