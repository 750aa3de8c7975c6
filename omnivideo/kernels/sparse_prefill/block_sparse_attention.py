"""Block-sparse causal flash-attention forward over per-(KV head, query block) key-block lists.

    out, lse = block_sparse_attention(q, k, v, lists, q_offset=0, scale=d ** -0.5)

Semantics: `omnivideo.kernels.sparse_prefill.reference.block_sparse_attention_reference`. Design (H100):
- GQA without expanding K/V: a program's query tile is BLOCK_M rows of the flattened (query head,
  token) rows of one KV group and one query block, which all share one key-block list, so a K/V
  tile is loaded once for BLOCK_M / B heads and the whole tile feeds one tensor-core dot;
- no padded rows: the g * B rows of a group are split into full 128-row tiles plus a tail launch
  with a smaller tile (g = 7, B = 64: 3 x 128 + 1 x 64 rows instead of 4 x 128, 12.5% less work);
- key tiles are gathered by index: NB listed blocks through pointer loads, or one block through a
  TMA descriptor (an autotune choice; a toolchain that cannot build the TMA variant falls back to
  pointer loads with a warning);
- only the last key tile holds the diagonal block (lists are sorted and end with it), so it alone
  is masked; every other iteration is mask-free;
- (KV head, query block) work items run heaviest list first (a longest-processing-time order);
- fp32 accumulation, online softmax in base 2, natural-log LSE.
"""
import logging

import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import INTERPRET, autotune, check_device, check_last_dim_contiguous, online_softmax_step

try:
    from triton.tools.tensor_descriptor import TensorDescriptor
except ImportError:                                  # older Triton: pointer loads only
    TensorDescriptor = None

LOG = logging.getLogger(__name__)
LOG2E = 1.4426950408889634
LN2 = tl.constexpr(0.6931471805599453)       # a jit kernel may only read constexpr globals
MAIN_TILE = 128                                # rows of the main launch's query tiles


@triton.jit
def _attn_kernel(Q, K, V, K_desc, V_desc, O, LSE, IDX, CNT, ORDER,
                 sq_h, sq_n, sk_h, sk_n, sv_h, sv_n, so_h, so_n,
                 Nq, Nk, q_offset, Mq, S, qk_scale, row0,
                 G: tl.constexpr, B: tl.constexpr, D: tl.constexpr, PREC: tl.constexpr,
                 BLOCK_M: tl.constexpr, NB: tl.constexpr, USE_TMA: tl.constexpr):
    BLOCK_N: tl.constexpr = NB * B
    tl.static_assert(NB == 1 or not USE_TMA, "a TMA key tile is one listed block")
    tile = tl.program_id(0)
    item = tl.load(ORDER + tl.program_id(1))            # work item u * Mq + i, heaviest first
    u = item // Mq
    i = item % Mq
    r = row0 + tile * BLOCK_M + tl.arange(0, BLOCK_M)   # rows of the group: (head, token) pairs
    head = (u * G + r // B).to(tl.int64)
    tok = i * B + r % B                                 # query row within the chunk
    row_ok = (r < G * B) & (tok < Nq)
    d = tl.arange(0, D)
    q = tl.load(Q + head[:, None] * sq_h + tok[:, None] * sq_n + d[None, :], mask=row_ok[:, None], other=0.0)
    qpos = q_offset + tok
    n = tl.load(CNT + item)
    idx_row = IDX + item.to(tl.int64) * S
    j = tl.arange(0, BLOCK_N)
    k_base = K + u.to(tl.int64) * sk_h
    v_base = V + u.to(tl.int64) * sv_h
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, D], tl.float32)
    # -- mask-free tiles: full blocks strictly before the diagonal --
    n_free = (n - 1) // NB
    for jt in range(0, n_free):
        if USE_TMA:                                     # descriptors view K, V as [Hkv * Nk, D]
            row = u * Nk + tl.load(idx_row + jt) * B
            s = tl.dot(q, tl.trans(K_desc.load([row, 0])), input_precision=PREC)
            acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, qk_scale, V_desc.load([row, 0]), PREC)
        else:
            kpos = tl.load(idx_row + jt * NB + j // B) * B + j % B   # [BLOCK_N] key rows
            kt = tl.load(k_base + kpos[None, :] * sk_n + d[:, None])  # [D, BLOCK_N]
            s = tl.dot(q, kt, input_precision=PREC)
            vt = tl.load(v_base + kpos[:, None] * sv_n + d[None, :])  # [BLOCK_N, D]
            acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, qk_scale, vt, PREC)
    # -- last tile: holds the diagonal block; list end, Nk and causal masks --
    e = n_free * NB + j // B
    e_ok = e < n
    kpos = tl.load(idx_row + e, mask=e_ok, other=0) * B + j % B
    k_ok = e_ok & (kpos < Nk)
    kt = tl.load(k_base + kpos[None, :] * sk_n + d[:, None], mask=k_ok[None, :], other=0.0)
    s = tl.dot(q, kt, input_precision=PREC)
    s = tl.where(k_ok[None, :] & (kpos[None, :] <= qpos[:, None]), s, float("-inf"))
    vt = tl.load(v_base + kpos[:, None] * sv_n + d[None, :], mask=k_ok[:, None], other=0.0)
    acc, m_i, l_i = online_softmax_step(acc, m_i, l_i, s, qk_scale, vt, PREC)
    # -- epilogue --
    out = acc / l_i[:, None]
    tl.store(O + head[:, None] * so_h + tok[:, None] * so_n + d[None, :], out.to(O.dtype.element_ty),
             mask=row_ok[:, None])
    tl.store(LSE + head * Nq + tok, (m_i + tl.log2(l_i)) * LN2, mask=row_ok)


def _config(nb, warps, stages, tma=False):
    return triton.Config({"NB": nb, "USE_TMA": tma}, num_warps=warps, num_stages=stages)


# Pointer-load configs first (the interpreter keeps only the first). Run 2 on an H100 (d 128, g 7)
# picked NB 1, 4 warps, 3 stages among the first six.
_POINTER_CONFIGS = [_config(2, 8, 3), _config(1, 4, 3), _config(1, 8, 3), _config(2, 8, 2), _config(1, 4, 2),
                    _config(1, 8, 2), _config(1, 4, 4)]
_TMA_CONFIGS = [_config(1, 4, 3, True), _config(1, 8, 3, True), _config(1, 4, 2, True), _config(1, 8, 2, True)]
_KEY = ["G", "B", "D", "PREC", "BLOCK_M"]
_attn_kernel_tuned = autotune(_POINTER_CONFIGS + _TMA_CONFIGS, key=_KEY)(_attn_kernel)
_attn_kernel_pointer = autotune(_POINTER_CONFIGS, key=_KEY)(_attn_kernel)
_tma_failed = False


def _descriptors(k: torch.Tensor, v: torch.Tensor, B: int):
    """[Hkv * Nk, d] TMA descriptors of k and v (block [B, d]), or None where TMA cannot apply.
    Rows past Nk read the next head (or zeros): only the masked diagonal tile can reach them."""
    if TensorDescriptor is None or INTERPRET or _tma_failed:
        return None
    descs = []
    for t in (k, v):
        H, N, D = t.shape
        if t.stride(0) != N * t.stride(1) or t.data_ptr() % 16 or (t.stride(1) * t.element_size()) % 16:
            return None
        descs.append(TensorDescriptor(t, [H * N, D], [t.stride(1), 1], [B, D]))
    return descs


def tuned_configs() -> dict:
    """What the autotuners chose so far, {key: config}, and whether the TMA variant failed to build."""
    chosen = {**_attn_kernel_pointer.cache, **_attn_kernel_tuned.cache}
    return {"configs": {str(k): str(v) for k, v in chosen.items()}, "tma_failed": _tma_failed}


def _row_launches(G: int, B: int) -> list[tuple[int, int, int]]:
    """(row0, BLOCK_M, tiles) per launch: full MAIN_TILE-row tiles, then one smaller tail tile."""
    rows = G * B
    full = rows // MAIN_TILE
    launches = [(0, MAIN_TILE, full)] if full else []
    if rows % MAIN_TILE:
        launches.append((full * MAIN_TILE, max(16, triton.next_power_of_2(rows % MAIN_TILE)), 1))
    return launches


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lists, *, q_offset: int,
                           scale: float, block_m: int | None = None, blocks_per_tile: int | None = None,
                           use_tma: bool = False, num_warps: int | None = None,
                           num_stages: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal attention of one prefill chunk restricted to listed key blocks.

    q [Hq, Nq, d] (queries at absolute positions q_offset + t); k, v [Hkv, Nk, d], Nk = q_offset + Nq;
    lists: `BlockLists` (block_idx [Hkv, Mq, S] int32 ascending, -1 padded, each row ending with its
    diagonal block q_offset // B + i; block_count [Hkv, Mq] int32; block_size B).
    block_m / blocks_per_tile / use_tma / num_warps / num_stages: fix the tile instead of autotuning (tests,
    tile sweeps; one launch over all g * B rows; use_tma needs k and v contiguous across heads).
    Returns out [Hq, Nq, d] in q.dtype and lse [Hq, Nq] float32 (natural log of the softmax sum)."""
    global _tma_failed
    idx, cnt = lists.block_idx, lists.block_count
    check_device(q, k, v, idx, cnt)
    check_last_dim_contiguous(q=q, k=k, v=v)
    Hq, Nq, D = q.shape
    Hkv, Nk, _ = k.shape
    B = lists.block_size
    assert k.shape == v.shape and k.shape[2] == D, f"k {tuple(k.shape)}, v {tuple(v.shape)}, d {D}"
    assert q.dtype == k.dtype == v.dtype, (q.dtype, k.dtype, v.dtype)
    assert D >= 16 and D & (D - 1) == 0, f"head_dim must be a power of two >= 16, got {D}"
    assert Hq % Hkv == 0, f"query heads {Hq} must be a multiple of KV heads {Hkv}"
    assert q_offset % B == 0 and Nk == q_offset + Nq, (q_offset, Nq, Nk, B)
    Mq = triton.cdiv(Nq, B)
    assert idx.dtype == cnt.dtype == torch.int32 and idx.shape[:2] == (Hkv, Mq) and cnt.shape == (Hkv, Mq)
    assert idx.is_contiguous() and cnt.is_contiguous()
    G = Hq // Hkv
    out = torch.empty(Hq, Nq, D, device=q.device, dtype=q.dtype)
    lse = torch.empty(Hq, Nq, device=q.device, dtype=torch.float32)
    order = torch.argsort(cnt.flatten(), descending=True, stable=True).to(torch.int32)
    descs = _descriptors(k, v, B) if not use_tma else [
        TensorDescriptor(t, [Hkv * Nk, D], [t.stride(1), 1], [B, D]) for t in (k, v)]
    args = [q, k, v, *(descs or (k, v)), out, lse, idx, cnt, order, q.stride(0), q.stride(1), k.stride(0),
            k.stride(1), v.stride(0), v.stride(1), out.stride(0), out.stride(1), Nq, Nk, q_offset, Mq,
            idx.shape[2], scale * LOG2E]
    meta = dict(G=G, B=B, D=D, PREC="ieee" if q.dtype == torch.float32 else "tf32")
    if block_m is not None or blocks_per_tile is not None or use_tma or num_warps or num_stages:
        bm, nb = block_m or MAIN_TILE, 1 if use_tma else (blocks_per_tile or 1)
        launch = {"num_warps": num_warps or (8 if bm * D >= 128 * 128 else 4)}
        if num_stages:
            launch["num_stages"] = num_stages
        _attn_kernel[(triton.cdiv(G * B, bm), Hkv * Mq)](*args, 0, **meta, BLOCK_M=bm, NB=nb, USE_TMA=use_tma,
                                                         **launch)
        return out, lse
    for row0, bm, tiles in _row_launches(G, B):
        kernel = _attn_kernel_tuned if descs else _attn_kernel_pointer
        try:
            kernel[(tiles, Hkv * Mq)](*args, row0, **meta, BLOCK_M=bm)
        except Exception as err:  # noqa: BLE001  toolchain-specific TMA failures: keep the proven path
            # ... but an out-of-memory is no verdict on the variant: falling back would hide it and retry hungrier
            if kernel is _attn_kernel_pointer or isinstance(err, torch.OutOfMemoryError) \
                    or "out of memory" in str(err).lower():
                raise
            LOG.warning("TMA attention variant failed to build (%s); using pointer loads", err)
            _tma_failed, descs = True, None
            args[3:5] = [k, v]
            _attn_kernel_pointer[(tiles, Hkv * Mq)](*args, row0, **meta, BLOCK_M=bm)
    return out, lse
