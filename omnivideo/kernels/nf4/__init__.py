"""NF4 GEMV for decode: register lookup of the codes, split-K partial sums; the reference dequantization."""
