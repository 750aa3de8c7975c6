"""Pure-PyTorch definitions of every kernel op: the spec the Triton kernels are tested against.

One module per op family (fp32 math, readable loops/einsum, shapes in docstrings).
"""
