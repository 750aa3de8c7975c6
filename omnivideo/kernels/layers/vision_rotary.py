"""Rotary position embedding of q and k, read straight from the fused qkv projection (the vision block).

    q, k = rotary_qk(qkv, cos, sin, num_heads=16)    # qkv [N, 3*H*D]; cos, sin [N, D] fp32 -> [N, H, D] x 2

Semantics: `omnivideo.kernels.layers.vision_rotary_reference` (transformers' `apply_rotary_pos_emb_vision`: fp32
math, `rotate_half`, one cast back at the end). transformers upcasts q and k to fp32 copies, builds
`rotate_half` with a cat and runs two products and a sum: about seven passes each; here one pass
reads q and k from the projection's output and writes them rotated and contiguous, ready for
`omnivideo.kernels.varlen.varlen_attention`:
- the q and k parts of a qkv row are 2H consecutive head vectors, so the kernel sees N * 2H "head
  rows" of D; a program takes BLOCK_R of them (no loop, every load independent). Head row r is
  patch r // 2H, whose cos / sin row it reads (the 2H head rows of a patch share it: cache hits);
- any even head_dim: the D tile is the next power of two (>= 16), extra columns masked (D = 80 in a
  128 tile); the rotate-half partner of column d is a second, shifted load of the same row (it hits
  the cache the first load filled);
- cos / sin rows may have any stride (last dim contiguous); offsets in int64.
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device, check_last_dim_contiguous

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
TILE = 4096            # elements per program: BLOCK_R * BLOCK_D


@triton.jit(do_not_specialize=["n_rows"])
def _rotary_qk_kernel(QKV, COS, SIN, Q, K, n_rows, s_qkv, s_cos, s_sin, H: tl.constexpr,
                      HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr):
    HALF: tl.constexpr = HEAD_DIM // 2
    r = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)    # head rows: (patch, q/k head)
    d = tl.arange(0, BLOCK_D)
    row_ok = r < n_rows
    mask = row_ok[:, None] & (d < HEAD_DIM)[None, :]
    patch = r // (2 * H)                                 # H constexpr: a division by a constant
    head = r % (2 * H)                                   # 0..H-1: q heads, H..2H-1: k heads
    # rotate_half: column d takes -x[d + D/2] in the first half and x[d - D/2] in the second
    first = d < HALF
    partner = tl.where(first, d + HALF, d - HALF)
    sign = tl.where(first, -1.0, 1.0)
    src = QKV + patch[:, None] * s_qkv + head[:, None] * HEAD_DIM
    x = tl.load(src + d[None, :], mask=mask, other=0.0).to(tl.float32)
    xp = tl.load(src + partner[None, :], mask=mask, other=0.0).to(tl.float32)
    c = tl.load(COS + patch[:, None] * s_cos + d[None, :], mask=mask, other=0.0).to(tl.float32)
    s = tl.load(SIN + patch[:, None] * s_sin + d[None, :], mask=mask, other=0.0).to(tl.float32)
    y = x * c + (xp * sign[None, :]) * s
    # -- q heads to Q, k heads to K, both [N, H, D] contiguous --
    is_q = head < H
    out = patch[:, None] * (H * HEAD_DIM) + (head % H)[:, None] * HEAD_DIM + d[None, :]
    tl.store(Q + out, y.to(Q.dtype.element_ty), mask=mask & is_q[:, None])
    tl.store(K + out, y.to(K.dtype.element_ty), mask=mask & ~is_q[:, None])


def rotary_qk(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
              num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated q and k from a fused qkv projection.

    qkv [N, 3*H*D] fp16/bf16/fp32, contiguous, laid out (q | k | v) each [H, D]; cos, sin [N, D]
    float32 (last dim contiguous); D even. Returns (q, k) [N, H, D] contiguous in qkv's dtype.
    """
    check_device(qkv, cos, sin)
    check_last_dim_contiguous(cos=cos, sin=sin)
    assert qkv.dim() == 2 and qkv.dtype in DTYPES, (
        f"qkv must be [N, 3*H*D] fp16/bf16/fp32, got {qkv.dtype} {tuple(qkv.shape)}")
    assert qkv.is_contiguous(), f"qkv must be contiguous (the projection's own output), strides {qkv.stride()}"
    n = qkv.shape[0]
    assert cos.dim() == 2 and cos.shape == sin.shape and cos.shape[0] == n, (
        f"cos, sin must be [N, D] with N = {n}: cos {tuple(cos.shape)}, sin {tuple(sin.shape)}")
    assert cos.dtype == sin.dtype == torch.float32, f"cos, sin must be float32, got {cos.dtype}, {sin.dtype}"
    d = cos.shape[1]
    assert d % 2 == 0 and num_heads > 0 and qkv.shape[1] == 3 * num_heads * d, (
        f"qkv {tuple(qkv.shape)} is not [N, 3 * {num_heads} * {d}] with an even head dim")
    q = torch.empty(n, num_heads, d, device=qkv.device, dtype=qkv.dtype)
    k = torch.empty_like(q)
    if n == 0:
        return q, k
    block_d = max(16, triton.next_power_of_2(d))
    block_r = max(1, TILE // block_d)
    head_rows = n * 2 * num_heads
    _rotary_qk_kernel[(triton.cdiv(head_rows, block_r),)](
        qkv, cos, sin, q, k, head_rows, qkv.stride(0), cos.stride(0), sin.stride(0), H=num_heads,
        HEAD_DIM=d, BLOCK_D=block_d, BLOCK_R=block_r, num_warps=4)
    return q, k
