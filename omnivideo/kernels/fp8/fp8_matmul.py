"""FP8 linears: activations quantized per token, times weights quantized per output channel, on FP8 tensor cores.

    w = quantize_rows(weight)            # weight [N, K] -> FP8Rows (omnivideo.kernels.fp8.row_quant)
    y = fp8_linear(x, w, bias)           # x [M, K] -> [M, N] in x's dtype

The product runs as `torch._scaled_mm` with row-wise scales (cuBLASLt; `use_fast_accum=False`, so the
accumulation is full fp32) for bf16 inputs on a GPU with FP8 tensor cores (compute capability >= 8.9,
`fp8_supported`) whose N and K are multiples of 16 (`scaled_mm_fits`); everywhere else, and under
OMNIVIDEO_KERNELS=reference, the emulation `fp8_matmul_reference` runs: the same numbers up to fp32
summation order (omnivideo/kernels/fp8/reference.py). `_scaled_mm` is cuBLAS, not Triton; the kernel switch
decides it like every other kernel.
"""
import torch

from omnivideo.kernels import use_triton
from omnivideo.kernels.fp8.reference import E4M3, FP8Rows, fp8_matmul_reference
from omnivideo.kernels.fp8.row_quant import DTYPES, fp8_supported, quantize_rows


def scaled_mm_fits(n: int, k: int) -> bool:
    """Whether `_scaled_mm` takes a weight [N, K]: both dimensions multiples of 16 (M is free)."""
    return n % 16 == 0 and k % 16 == 0 and n > 0 and k > 0


def _scaled_mm_product(a: FP8Rows, w: FP8Rows, bias: torch.Tensor | None) -> torch.Tensor:
    """The tensor-core path: a [M, K] row-major, w.data.t() [K, N] column-major, scales [M, 1] and [1, N]."""
    y = torch._scaled_mm(a.data, w.data.t(), scale_a=a.scale[:, None], scale_b=w.scale[None, :],
                         out_dtype=torch.bfloat16, use_fast_accum=False)
    return y if bias is None else y.add_(bias.to(torch.bfloat16))   # after the rounding, as the reference


def fp8_matmul(a: FP8Rows, w: FP8Rows, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """a [M, K] (per-token scales) times w [N, K] (per-channel scales) (+ bias [N]) -> [M, N] in out_dtype."""
    (m, k), (n, kw) = a.shape, w.shape
    assert k == kw, f"a is [{m}, {k}] but w is [{n}, {kw}]"
    assert a.data.is_contiguous() and w.data.is_contiguous(), "FP8 data must be contiguous"
    assert out_dtype in DTYPES, f"out_dtype {out_dtype}"
    devices = {a.data.device, a.scale.device, w.data.device, w.scale.device}
    if bias is not None:
        assert bias.shape == (n,), f"bias must be [{n}], got {tuple(bias.shape)}"
        devices.add(bias.device)
    assert len(devices) == 1, f"tensors on several devices: {devices}"
    device = a.data.device
    if device.type == "cuda" and out_dtype == torch.bfloat16 and use_triton(device, out_dtype) \
            and fp8_supported(device):
        assert scaled_mm_fits(n, k), f"_scaled_mm needs N and K multiples of 16, got [{n}, {k}]"
        return _scaled_mm_product(a, w, bias)
    return fp8_matmul_reference(a, w, bias, out_dtype)


def fp8_linear(x: torch.Tensor, w: FP8Rows, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K] quantized per row now (dynamic scales), times w [N, K] -> [M, N] in x's dtype."""
    assert w.data.dtype == E4M3
    return fp8_matmul(quantize_rows(x), w, bias, x.dtype)
