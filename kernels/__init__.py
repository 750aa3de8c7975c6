"""OmniSparse attention kernels.

Each op has a pure-PyTorch reference (`kernels.reference`), a private Triton kernel and a public
launcher that checks shapes, strides and dtypes. This package imports nothing from the project.
"""
