"""Variable-length (packed segments) non-causal flash-attention forward: every segment and head in one launch.

    out = varlen_attention(q, k, v, cu_seqlens, scale=80 ** -0.5, max_seqlen=1024)
    out, lse = varlen_attention(q, k, v, cu_seqlens, scale=80 ** -0.5, return_lse=True)

Semantics: `omnivideo.kernels.varlen.reference.varlen_attention_reference` (flash-attn's varlen
layout: q, k, v, out [N, H, D], segment boundaries cu_seqlens [S + 1] int32). Design:
- one program per (work item, head); a work item is one BLOCK_M-row query block of one segment,
  taken from a table built on the device (no host sync): segments of a few tokens (edge windows)
  and of thousands (whole frames) share one grid, and no program loops over another segment;
- the grid is sized without reading cu_seqlens on the host: sum_s cdiv(L_s, BLOCK_M) <= N / BLOCK_M
  + S, so it has cdiv(N, BLOCK_M) + S items and the ones past the table's end return at once;
- any head_dim: the D tile is the next power of two (>= 16) and the extra columns are masked
  (Qwen2.5-VL's vision tower: 80 in a 128 tile);
- key tiles are mask-free except a segment's last, partial one;
- q, k, v may have any strides but a contiguous last dim (transformers hands them as views of the
  fused qkv projection); fp32 accumulation, online softmax in base 2, natural-log LSE.
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import autotune, check_device, check_last_dim_contiguous, online_softmax_step

LOG2E = 1.4426950408889634
LN2 = tl.constexpr(0.6931471805599453)       # a jit kernel may only read constexpr globals
DTYPES = (torch.float16, torch.bfloat16, torch.float32)


# Lengths and table sizes change with every video: no recompiles for their divisibility by 16.
@triton.jit(do_not_specialize=["n_work", "len_bucket", "N"])
def _varlen_attn_kernel(Q, K, V, O, LSE, CU, WORK, n_work, len_bucket,
                        sq_n, sq_h, sk_n, sk_h, sv_n, sv_h, so_n, so_h, N, qk_scale,
                        HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr,
                        BLOCK_N: tl.constexpr, PREC: tl.constexpr, WRITE_LSE: tl.constexpr):
    seg = tl.load(WORK + tl.program_id(0))                # -1: past the table's end
    if seg < 0:
        return
    qblock = tl.load(WORK + n_work + tl.program_id(0))
    h = tl.program_id(1).to(tl.int64)
    start = tl.load(CU + seg)
    end = tl.load(CU + seg + 1)
    rows = start + qblock * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < end
    rows = rows.to(tl.int64)                              # N * stride can pass 2**31 on long videos
    d = tl.arange(0, BLOCK_D)
    d_ok = d < HEAD_DIM
    # load q: it stays in registers for the whole segment
    q = tl.load(Q + rows[:, None] * sq_n + h * sq_h + d[None, :], mask=row_ok[:, None] & d_ok[None, :], other=0.0)
    k_base = K + h * sk_h
    v_base = V + h * sv_h
    j = tl.arange(0, BLOCK_N)
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    # -- full key tiles: no key mask --
    n_full = (end - start) // BLOCK_N
    for t in range(0, n_full):
        keys = (start + t * BLOCK_N + j).to(tl.int64)
        kt = tl.load(k_base + keys[None, :] * sk_n + d[:, None], mask=d_ok[:, None], other=0.0)  # [D, BLOCK_N]
        s = tl.dot(q, kt, input_precision=PREC)
        vt = tl.load(v_base + keys[:, None] * sv_n + d[None, :], mask=d_ok[None, :], other=0.0)  # [BLOCK_N, D]
        acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, qk_scale, vt, PREC)
    # -- the segment's last, partial key tile --
    tail = start + n_full * BLOCK_N
    if tail < end:
        keys = tail + j
        k_ok = keys < end
        keys = keys.to(tl.int64)
        kt = tl.load(k_base + keys[None, :] * sk_n + d[:, None], mask=k_ok[None, :] & d_ok[:, None], other=0.0)
        s = tl.dot(q, kt, input_precision=PREC)
        s = tl.where(k_ok[None, :], s, float("-inf"))
        vt = tl.load(v_base + keys[:, None] * sv_n + d[None, :], mask=k_ok[:, None] & d_ok[None, :], other=0.0)
        acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, qk_scale, vt, PREC)
    # -- epilogue --
    out = acc / l_i[:, None]
    tl.store(O + rows[:, None] * so_n + h * so_h + d[None, :], out.to(O.dtype.element_ty),
             mask=row_ok[:, None] & d_ok[None, :])
    if WRITE_LSE:
        tl.store(LSE + h * N + rows, (m_i + tl.log2(l_i)) * LN2, mask=row_ok)


def _config(block_n, warps, stages):
    return triton.Config({"BLOCK_N": block_n}, num_warps=warps, num_stages=stages)


def _prune(configs, named_args, **kwargs):
    """Key tiles longer than the longest segment only add masked columns: drop them (when known)."""
    bucket = named_args["len_bucket"]
    kept = [c for c in configs if not bucket or c.kwargs["BLOCK_N"] <= max(32, bucket)]
    return kept or configs[:1]


# The interpreter keeps only the first config. Keyed on the segment-length bucket too: windows
# (<= 64 tokens) and whole frames (~1K tokens) want different tiles.
_CONFIGS = [_config(64, 4, 2), _config(64, 4, 3), _config(32, 4, 2), _config(64, 8, 2), _config(128, 8, 2)]
_varlen_attn_tuned = autotune(_CONFIGS, key=["HEAD_DIM", "BLOCK_M", "PREC", "WRITE_LSE", "len_bucket"],
                              prune_configs_by={"early_config_prune": _prune})(_varlen_attn_kernel)


def tuned_configs() -> dict:
    """What the autotuner chose so far: {key: config}."""
    return {str(k): str(v) for k, v in _varlen_attn_tuned.cache.items()}


def work_table(cu_seqlens: torch.Tensor, n_tokens: int, block_m: int) -> torch.Tensor:
    """Work items of one launch, built on the device without a host sync.

    cu_seqlens [S + 1] int32 -> table [2, W] int32, W = cdiv(n_tokens, block_m) + S: row 0 the segment
    of item w (-1 past the last item), row 1 its query block within the segment. Items are in
    segment order; segment s has cdiv(L_s, block_m) of them (none when empty).
    """
    S = cu_seqlens.numel() - 1
    n_work = triton.cdiv(n_tokens, block_m) + S
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    blocks = (lengths + block_m - 1) // block_m
    last = torch.cumsum(blocks, 0)                          # items up to and including segment s
    item = torch.arange(n_work, device=cu_seqlens.device)
    seg = torch.searchsorted(last, item, right=True)       # first segment whose items reach past `item`
    valid = seg < S
    seg = seg.clamp(max=S - 1)
    qblock = item - (last - blocks)[seg]
    return torch.stack([torch.where(valid, seg, -1), torch.where(valid, qblock, 0)]).to(torch.int32)


def varlen_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, *, scale: float,
                     max_seqlen: int | None = None, return_lse: bool = False, block_m: int | None = None,
                     block_n: int | None = None):
    """Non-causal attention within each packed segment, one launch for all segments and heads.

    q, k, v [N, H, D] fp16/bf16/fp32 (last dim contiguous, other strides free); cu_seqlens [S + 1]
    int32 (0 first, N last, non-decreasing: not checked here, that would cost a host sync).
    max_seqlen: the longest segment if known (picks the query tile: 64 rows for windows, 128 for
    longer segments). block_m / block_n: fix the tile instead of choosing / autotuning (tests).
    Returns out [N, H, D] contiguous in q.dtype, and with return_lse lse [H, N] float32."""
    check_device(q, k, v, cu_seqlens)
    check_last_dim_contiguous(q=q, k=k, v=v)
    assert q.dim() == 3 and k.shape == v.shape == q.shape, (
        f"q, k, v must be [N, H, D] alike: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    assert q.dtype == k.dtype == v.dtype and q.dtype in DTYPES, (q.dtype, k.dtype, v.dtype)
    assert cu_seqlens.dtype == torch.int32 and cu_seqlens.dim() == 1 and cu_seqlens.numel() >= 2, (
        f"cu_seqlens must be int32 [S + 1], got {cu_seqlens.dtype} {tuple(cu_seqlens.shape)}")
    assert cu_seqlens.is_contiguous()
    N, H, D = q.shape
    out = torch.empty(N, H, D, device=q.device, dtype=q.dtype)
    lse = torch.empty(H, N if return_lse else 1, device=q.device, dtype=torch.float32)
    if N == 0:
        return (out, lse) if return_lse else out
    bm = block_m or (64 if max_seqlen is not None and max_seqlen <= 64 else 128)
    table = work_table(cu_seqlens, N, bm)
    n_work = table.shape[1]
    len_bucket = triton.next_power_of_2(max_seqlen) if max_seqlen else 0
    args = [q, k, v, out, lse, cu_seqlens, table, n_work, len_bucket, q.stride(0), q.stride(1), k.stride(0),
            k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1), N, scale * LOG2E]
    meta = dict(HEAD_DIM=D, BLOCK_D=max(16, triton.next_power_of_2(D)), BLOCK_M=bm,
                PREC="ieee" if q.dtype == torch.float32 else "tf32", WRITE_LSE=return_lse)
    if block_n is not None:
        # 2 stages: fp32 tiles of 128 x 128 would not fit 3 stages of K/V in shared memory
        _varlen_attn_kernel[(n_work, H)](*args, **meta, BLOCK_N=block_n, num_warps=8 if bm >= 128 else 4,
                                         num_stages=2)
    else:
        _varlen_attn_tuned[(n_work, H)](*args, **meta)
    return (out, lse) if return_lse else out
