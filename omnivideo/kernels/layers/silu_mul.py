"""SiLU(gate) * up on the output of one fused gate/up GEMM (the vision block's gated MLP).

    out = silu_mul(gate_up)       # gate_up [N, 2I] -> [N, I]

Semantics: `omnivideo.kernels.layers.silu_mul_reference` (transformers' rounding: SiLU in fp32 rounded to the dtype,
then the product rounded again). transformers reads the gate and the up projection from two
GEMM outputs and writes the SiLU between them: three passes; here one program reads a
[BLOCK_M, BLOCK_I] tile of each half of the rows and writes the product once. Rows may have any
stride (last dim contiguous); offsets in int64.
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device, check_last_dim_contiguous

DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit(do_not_specialize=["n_rows"])
def _silu_mul_kernel(GU, O, n_rows, I, s_gu, s_o, BLOCK_M: tl.constexpr, BLOCK_I: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_I + tl.arange(0, BLOCK_I)
    mask = (rows < n_rows)[:, None] & (cols < I)[None, :]
    rows = rows.to(tl.int64)
    gate_ptr = GU + rows[:, None] * s_gu + cols[None, :]
    g = tl.load(gate_ptr, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gate_ptr + I, mask=mask, other=0.0).to(tl.float32)
    act = (g / (1.0 + tl.exp(-g))).to(O.dtype.element_ty)       # rounded like transformers' act_fn(gate)
    tl.store(O + rows[:, None] * s_o + cols[None, :], (act.to(tl.float32) * u).to(O.dtype.element_ty), mask=mask)


def silu_mul(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate_up[:, :I]) * gate_up[:, I:]. gate_up [N, 2I] fp16/bf16/fp32 (last dim contiguous).
    Returns [N, I] contiguous in gate_up's dtype."""
    check_device(gate_up)
    check_last_dim_contiguous(gate_up=gate_up)
    assert gate_up.dim() == 2 and gate_up.dtype in DTYPES, (
        f"gate_up must be [N, 2I] fp16/bf16/fp32, got {gate_up.dtype} {tuple(gate_up.shape)}")
    n, two_i = gate_up.shape
    assert two_i % 2 == 0 and two_i > 0, f"gate_up's last dim must be even and positive, got {two_i}"
    i = two_i // 2
    out = torch.empty(n, i, device=gate_up.device, dtype=gate_up.dtype)
    if n == 0:
        return out
    block_i = min(1024, max(16, triton.next_power_of_2(i)))     # columns past I are masked
    block_m = max(1, 4096 // block_i)
    grid = (triton.cdiv(n, block_m), triton.cdiv(i, block_i))
    _silu_mul_kernel[grid](gate_up, out, n, i, gate_up.stride(0), out.stride(0), BLOCK_M=block_m, BLOCK_I=block_i,
                           num_warps=8 if block_m * block_i >= 4096 else 4)
    return out
