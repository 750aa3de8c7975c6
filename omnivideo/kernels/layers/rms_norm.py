"""RMSNorm, and residual add + RMSNorm, in one pass over each row (the vision block's two norms).

    y = rms_norm(x, weight, eps=1e-6)                  # x [N, C], weight [C] -> [N, C]
    r, y = add_rms_norm(x, delta, weight, eps=1e-6)    # r = x + delta, y = rms_norm(r)

Semantics: `omnivideo.kernels.layers.rms_norm_reference` (transformers' Qwen2.5-VL RMSNorm rounding: fp32 statistics,
the normalized value cast to the input dtype before the weight product; the residual sum rounded
to the dtype before the norm reads it). transformers runs this as ~7 elementwise kernels over fp32
copies of the row; here each program reads its rows once and writes once:
- ROWS rows per program, the whole row in registers: the C tile is the next power of two (masked),
  up to 8192, so one reduction gives the mean square;
- the weight is loaded once per program and shared by its rows;
- rows may have any stride (last dim contiguous), offsets in int64 (N * C can pass 2**31).
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device, check_last_dim_contiguous

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
MAX_C = 8192
TILE = 8192            # elements per program: ROWS * BLOCK_C (enough in flight, no register spill)


@triton.jit(do_not_specialize=["n_rows"])
def _rms_norm_kernel(X, DELTA, W, R, Y, n_rows, C, sx, sd, sr, sy, eps,
                     HAS_DELTA: tl.constexpr, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    cols = tl.arange(0, BLOCK_C)
    col_ok = cols < C
    mask = (rows < n_rows)[:, None] & col_ok[None, :]
    rows = rows.to(tl.int64)
    x = tl.load(X + rows[:, None] * sx + cols[None, :], mask=mask, other=0.0)
    if HAS_DELTA:
        # the residual stream is rounded to its dtype (transformers' plain add) before the norm reads it
        d = tl.load(DELTA + rows[:, None] * sd + cols[None, :], mask=mask, other=0.0)
        x = (x.to(tl.float32) + d.to(tl.float32)).to(Y.dtype.element_ty)
        tl.store(R + rows[:, None] * sr + cols[None, :], x, mask=mask)
    # -- fp32 statistics --
    xf = x.to(tl.float32)
    var = tl.sum(xf * xf, 1) / C
    h = xf * tl.rsqrt(var + eps)[:, None]
    # -- cast to the dtype first, then the weight product (as transformers) --
    w = tl.load(W + cols, mask=col_ok, other=0.0).to(tl.float32)
    y = h.to(Y.dtype.element_ty).to(tl.float32) * w[None, :]
    tl.store(Y + rows[:, None] * sy + cols[None, :], y.to(Y.dtype.element_ty), mask=mask)


def _check(x: torch.Tensor, weight: torch.Tensor, eps: float, **others: torch.Tensor) -> None:
    check_device(x, weight, *others.values())
    check_last_dim_contiguous(x=x, **others)
    assert x.dim() == 2 and x.dtype in DTYPES, f"x must be [N, C] fp16/bf16/fp32, got {x.dtype} {tuple(x.shape)}"
    assert weight.shape == (x.shape[1],) and weight.dtype == x.dtype and weight.is_contiguous(), (
        f"weight must be [C] contiguous in x's dtype: weight {weight.dtype} {tuple(weight.shape)}, x {x.dtype}")
    assert 0 < x.shape[1] <= MAX_C, f"C must be in 1..{MAX_C}, got {x.shape[1]}"
    assert eps >= 0, eps
    for name, t in others.items():
        assert t.shape == x.shape and t.dtype == x.dtype, (
            f"{name} {t.dtype} {tuple(t.shape)} != x {x.dtype} {tuple(x.shape)}")


def _launch(x, delta, weight, eps, r, y) -> None:
    n, c = x.shape
    if n == 0:
        return
    block_c = max(16, triton.next_power_of_2(c))      # no 1-wide tiles: columns past C are masked
    rows = max(1, min(16, TILE // block_c))
    warps = 8 if rows * block_c >= 4096 else 4
    d = x if delta is None else delta              # unused when HAS_DELTA is off
    out_r = y if r is None else r
    _rms_norm_kernel[(triton.cdiv(n, rows),)](
        x, d, weight, out_r, y, n, c, x.stride(0), d.stride(0), out_r.stride(0), y.stride(0), float(eps),
        HAS_DELTA=delta is not None, ROWS=rows, BLOCK_C=block_c, num_warps=warps)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of each row. x [N, C] fp16/bf16/fp32 (last dim contiguous, C <= 8192), weight [C] in
    x's dtype. Returns [N, C] contiguous in x.dtype."""
    _check(x, weight, eps)
    y = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    _launch(x, None, weight, eps, None, y)
    return y


def add_rms_norm(x: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual add and RMSNorm in one pass. x, delta [N, C] one dtype (last dim contiguous), weight [C].
    Returns (x + delta, rms_norm(x + delta)), both [N, C] contiguous; x and delta are not modified."""
    _check(x, weight, eps, delta=delta)
    r = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    y = torch.empty_like(r)
    _launch(x, delta, weight, eps, r, y)
    return r, y
