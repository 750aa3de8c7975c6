"""FP8 e4m3 linears with per-row scales: the spec of `omnivideo.kernels.fp8` (the emulation the CPU runs).

Quantization of a matrix T [R, K] row by row (weights: R = output channels; activations: R = tokens,
scaled dynamically, i.e. from the values of this very call):
    amax[r]  = max_k |T[r, k]|                       (fp32; at least MIN_AMAX, so a zero row stays zero)
    q[r, k]  = e4m3(clamp(T[r, k] * (E4M3_MAX / amax[r]), -E4M3_MAX, E4M3_MAX))
    scale[r] = amax[r] / E4M3_MAX                    so T[r, k] ~ q[r, k] * scale[r]
(both divisions IEEE-rounded fp32, the product with the fp32 value of T rounded once)
where e4m3() rounds an fp32 value to the nearest float8_e4m3fn (ties to even; 3 mantissa bits, so the
relative error of a normal value is at most 2^-4; subnormals below 2^-6 have a fixed step of 2^-9).
The row's largest entry maps to +-448 exactly.

The product of A = (qa, sa) [M, K] and W = (qw, sw) [N, K], out in dtype D:
    y[m, n] = D(sa[m] * sw[n] * sum_k qa[m, k] * qw[n, k])      (products exact, fp32 accumulation)
    y       = D(y + D(bias))                                      (bias added after the rounding, in D)
which is what `torch._scaled_mm` with row-wise scales computes on FP8 tensor cores (`use_fast_accum=False`:
full fp32 accumulation), up to the order of the fp32 sums and of the two scale multiplications.

    w = quantize_rows_reference(weight)                      # FP8Rows, per output channel
    y = fp8_linear_reference(x, w, bias)                     # x [M, K] -> [M, N] in x's dtype
"""
from dataclasses import dataclass

import torch

E4M3 = torch.float8_e4m3fn
E4M3_MAX = 448.0
MIN_AMAX = 1e-12


@dataclass(frozen=True)
class FP8Rows:
    """A matrix in FP8 with one fp32 scale per row: T ~ data.float() * scale[:, None].

    data   float8_e4m3fn [R, K], contiguous
    scale  float32 [R], contiguous
    """
    data: torch.Tensor
    scale: torch.Tensor

    def __post_init__(self):
        assert self.data.dtype == E4M3 and self.data.dim() == 2, f"data must be e4m3 [R, K], got {self.data.dtype}"
        assert self.scale.dtype == torch.float32 and self.scale.shape == self.data.shape[:1], (
            f"scale must be float32 [{self.data.shape[0]}], got {self.scale.dtype} {tuple(self.scale.shape)}")

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.data.shape)


def quantize_rows_reference(t: torch.Tensor) -> FP8Rows:
    """t [R, K] float -> FP8Rows (module docstring). K may be 0 only with R = 0."""
    assert t.dim() == 2, f"t must be [R, K], got {tuple(t.shape)}"
    t32 = t.float()
    amax = (t32.abs().amax(dim=1) if t.shape[1] else t32.new_zeros(t.shape[0])).clamp_min(MIN_AMAX)
    # IEEE divisions by a tensor: torch computes `448 / amax` as reciprocal(amax) * 448 (two roundings) and
    # `amax / 448` as amax * (1 / 448) on the CPU, which a kernel would have to copy exactly
    top = torch.full_like(amax, E4M3_MAX)
    q = (t32 * (top / amax)[:, None]).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3)
    return FP8Rows(q.contiguous(), (amax / top).contiguous())


def dequantize_rows_reference(rows: FP8Rows) -> torch.Tensor:
    """FP8Rows -> float32 [R, K]: data * scale."""
    return rows.data.float() * rows.scale[:, None]


def fp8_matmul_reference(a: FP8Rows, w: FP8Rows, bias: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """a [M, K], w [N, K] -> [M, N] in out_dtype (module docstring)."""
    acc = a.data.float() @ w.data.float().t()   # every product of two e4m3 values is exact in fp32
    y = (acc * a.scale[:, None] * w.scale[None, :]).to(out_dtype)
    return y if bias is None else y + bias.to(out_dtype)


def fp8_linear_reference(x: torch.Tensor, w: FP8Rows, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K] float (quantized per row here) times W [N, K] -> [M, N] in x's dtype."""
    return fp8_matmul_reference(quantize_rows_reference(x), w, bias, x.dtype)
