"""Rotary position embedding of the language model's q and k in one launch (decode and prefill).

    q2, k2 = text_rotary(q, k, cos, sin)   # q [B, Hq, S, D], k [B, Hk, S, D]; cos, sin [B, S, D]

Semantics: `omnivideo.kernels.layers.text_rotary_reference` (fp32 math, one rounding). transformers runs this step as
about ten small kernels per layer (two products, a negation, a concatenation and a sum, for q and
for k); in a decode step each is a few microseconds of launch inside the CUDA graph, ~280 of the
7B step's kernels. Here one program rotates BLOCK_R head rows of q or k:
- q and k arrive as the projections' outputs viewed [B, H, S, D] (transposed, not contiguous): any
  strides with the last dim contiguous; the outputs get the inputs' strides (`empty_like`), as
  transformers' elementwise result would;
- head row r of q is (b, h, s) = (r // (Hq S), (r // S) % Hq, r % S) and reads cos / sin row (b, s);
  programs [0, PQ) take q's rows, the rest k's;
- the rotate-half partner of column d is a second, shifted load of the same row (a cache hit).
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device

DTYPES = (torch.float16, torch.bfloat16, torch.float32)
TILE = 4096  # elements per program: BLOCK_R * BLOCK_D


@triton.jit
def _text_rotary_kernel(Q, K, QO, KO, COS, SIN, B, HQ, HK, S, PQ,  #
                        sqb, sqh, sqs, skb, skh, sks, sob, soh, sos, spb, sph, sps,  #
                        scb, scs, ssb, sss,  #
                        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_R: tl.constexpr):
    HALF: tl.constexpr = HEAD_DIM // 2
    pid = tl.program_id(0)
    is_q = pid < PQ
    # scalar selects: the q programs read Q and write QO, the others K and KO
    X = tl.where(is_q, Q, K)
    O = tl.where(is_q, QO, KO)
    H = tl.where(is_q, HQ, HK)
    sxb, sxh, sxs = tl.where(is_q, sqb, skb), tl.where(is_q, sqh, skh), tl.where(is_q, sqs, sks)
    sob_, soh_, sos_ = tl.where(is_q, sob, spb), tl.where(is_q, soh, sph), tl.where(is_q, sos, sps)
    first_row = tl.where(is_q, pid, pid - PQ).to(tl.int64) * BLOCK_R
    r = first_row + tl.arange(0, BLOCK_R)
    d = tl.arange(0, BLOCK_D)
    b, h, s = r // (H * S), (r // S) % H, r % S
    mask = (r < B * H * S)[:, None] & (d < HEAD_DIM)[None, :]
    first = d < HALF
    partner = tl.where(first, d + HALF, d - HALF)
    sign = tl.where(first, -1.0, 1.0)
    src = X + (b * sxb + h * sxh + s * sxs)[:, None]
    x = tl.load(src + d[None, :], mask=mask, other=0.0).to(tl.float32)
    xp = tl.load(src + partner[None, :], mask=mask, other=0.0).to(tl.float32)
    c = tl.load(COS + (b * scb + s * scs)[:, None] + d[None, :], mask=mask, other=0.0).to(tl.float32)
    sn = tl.load(SIN + (b * ssb + s * sss)[:, None] + d[None, :], mask=mask, other=0.0).to(tl.float32)
    y = x * c + (xp * sign[None, :]) * sn
    tl.store(O + (b * sob_ + h * soh_ + s * sos_)[:, None] + d[None, :], y.to(O.dtype.element_ty), mask=mask)


def text_rotary(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor,
                sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated (q, k): see the module docstring; outputs have q's / k's dtype, shape and strides."""
    check_device(q, k, cos, sin)
    assert q.dim() == 4 and k.dim() == 4, f"q, k must be [B, H, S, D], got {tuple(q.shape)}, {tuple(k.shape)}"
    assert q.dtype == k.dtype and q.dtype in DTYPES, f"q, k dtypes {q.dtype}, {k.dtype}"
    bsz, hq, seq, dim = q.shape
    assert k.shape[0] == bsz and k.shape[2] == seq and k.shape[3] == dim, f"k {tuple(k.shape)} vs q {tuple(q.shape)}"
    assert dim % 2 == 0, f"head dim must be even, got {dim}"
    assert cos.shape == sin.shape == (bsz, seq, dim), f"cos, sin must be [{bsz}, {seq}, {dim}], got {tuple(cos.shape)}"
    for name, t in (("q", q), ("k", k), ("cos", cos), ("sin", sin)):
        assert t.stride(-1) == 1, f"{name} must be contiguous in its last dim, strides {t.stride()}"
    qo, ko = torch.empty_like(q), torch.empty_like(k)
    if q.numel() == 0:
        return qo, ko
    block_d = max(16, triton.next_power_of_2(dim))
    block_r = max(1, TILE // block_d)
    pq = triton.cdiv(bsz * hq * seq, block_r)
    pk = triton.cdiv(bsz * k.shape[1] * seq, block_r)
    _text_rotary_kernel[(pq + pk,)](
        q, k, qo, ko, cos, sin, bsz, hq, k.shape[1], seq, pq,  #
        q.stride(0), q.stride(1), q.stride(2), k.stride(0), k.stride(1), k.stride(2),  #
        qo.stride(0), qo.stride(1), qo.stride(2), ko.stride(0), ko.stride(1), ko.stride(2),  #
        cos.stride(0), cos.stride(1), sin.stride(0), sin.stride(1),  #
        HEAD_DIM=dim, BLOCK_D=block_d, BLOCK_R=block_r, num_warps=4)
    return qo, ko
