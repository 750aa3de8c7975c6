"""Block-level attention estimate of a prefill chunk (OmniSparse mechanisms 1 and 2), in Triton.

    est = estimate(q, k, q_offset=0, params=SparseParams(), scale=d ** -0.5)
    est.local_mass, est.cover_count           # [Hkv, Mq]: lazy test and per-head cover counts

Semantics are defined by `omnivideo.kernels.sparse_prefill.reference`; `omnivideo.kernels.sparse_prefill.block_select` turns an
estimate into key-block lists. The queries of a block are pooled (the means of its `query_parts`
parts, each treated as one more head of the GQA group, their masses averaged); the keys are not: a
block's estimated mass is a pooled query's softmax mass on its keys, so one strong key is not
diluted by 63 others (block-mean keys, `SparseParams.pooled_keys`, lose most of the recall on learned
attention: docs/method.md). Cost: pooling reads q once; the scores are ~parts/(2B) of dense
attention's (pooled keys: ~parts/B^2); the per-row kernel keeps rows of Mk block probabilities in registers and finds
the cover threshold by bisection on the float bit pattern (no sort).
The [Hkv, Mq, Mk] float32 probabilities are materialized: 64 MiB for a 128K-token chunk with 4 KV
heads; the engine prefills in chunks, which bounds Mq.
"""
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device, check_last_dim_contiguous

LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class Estimate:
    """block_probs [Hkv, Mq, Mk] float32: p_u, the softmax mass of each pooled query on each causal key
    block, averaged over the g query heads of KV head u (0 for non-causal blocks).
    local_mass [Hkv, Mq] float32: r, the share of p_u inside the local window.
    cover_count [Hkv, Mq] int32: k_u, fewest non-local, non-sink blocks holding gamma of their mass."""
    block_probs: torch.Tensor
    local_mass: torch.Tensor
    cover_count: torch.Tensor


@triton.jit
def _pool_kernel(X, OUT, sx_h, sx_n, N, M, B: tl.constexpr, PB: tl.constexpr, D: tl.constexpr):
    """Block means of rows: X [H, N, D] -> OUT [H, M, D] float32; PB blocks per program, grid (cdiv(M, PB), H)."""
    m0 = tl.program_id(0) * PB
    h = tl.program_id(1).to(tl.int64)
    rows = m0 * B + tl.arange(0, PB * B)
    d = tl.arange(0, D)
    x = tl.load(X + h * sx_h + rows[:, None] * sx_n + d[None, :], mask=rows[:, None] < N, other=0.0)
    m = m0 + tl.arange(0, PB)
    count = tl.maximum(tl.minimum(N - m * B, B), 1)     # the last block may be partial; >= 1 past M
    sums = tl.sum(tl.reshape(x.to(tl.float32), (PB, B, D)), 1)
    tl.store(OUT + (h * M + m)[:, None] * D + d[None, :], sums / count[:, None], mask=m[:, None] < M)


@triton.jit
def _block_probs_kernel(QBAR, KEYS, P, STATS, qk_scale, skh, skn, Mq, Mk, NKEYS, qb0, n_split, split_keys,
                        G: tl.constexpr, GP: tl.constexpr, BI: tl.constexpr, BC: tl.constexpr,
                        TB: tl.constexpr, D: tl.constexpr, PREC: tl.constexpr, PASS: tl.constexpr):
    """P[u, i, c] = mean over the G heads of u of the softmax mass of qbar[h, i] on key block c <= qb0 + i.

    KEYS [Hkv, NKEYS, D] holds TB key rows per block: the keys themselves (TB = B, NKEYS = Nk: each
    block's mass is the sum over its keys) or their block means (TB = 1, NKEYS = Mk: the pooled-keys
    estimate). Grid (tiles of BI query blocks, KV head u, split of the keys); rows are (head, query
    block) pairs, GP*BI of them, so one dot serves the whole GQA group. The keys are split in n_split
    ranges of split_keys rows (whole blocks) so that short chunks over long prefixes still fill the GPU.
    PASS 1: each split's row max and sum of exponentials -> STATS [2, n_split, programs, rows].
    PASS 2: the splits' statistics combined, then the split's probabilities summed per key block and over
    the group (no [Hq, Mq, Mk] intermediate)."""
    t = tl.program_id(0)
    u = tl.program_id(1).to(tl.int64)
    sp = tl.program_id(2)
    r = tl.arange(0, GP * BI)
    h = r // BI
    i = t * BI + r % BI
    d = tl.arange(0, D)
    row_ok = (h < G) & (i < Mq)
    qb = tl.load(QBAR + ((u * G + h) * Mq + i)[:, None] * D + d[None, :], mask=row_ok[:, None], other=0.0)
    qb = qb * qk_scale                                  # [rows, D], log2 domain
    bi = qb0 + i
    n_lo = sp * split_keys
    # key rows of the causal blocks of the tile's last row, within this split
    n_end = tl.minimum(tl.minimum((qb0 + t * BI + BI) * TB, NKEYS), n_lo + split_keys)
    n_stats = tl.num_programs(0) * tl.num_programs(1) * GP * BI
    srow = (u * tl.num_programs(0) + t) * GP * BI + r
    if PASS == 1:
        m_i = tl.full([GP * BI], float("-inf"), tl.float32)
        l_i = tl.zeros([GP * BI], tl.float32)
        for n0 in range(n_lo, n_end, BC * TB):
            n = n0 + tl.arange(0, BC * TB)
            kb = tl.load(KEYS + u * skh + n[None, :] * skn + d[:, None], mask=n[None, :] < NKEYS, other=0.0)
            s = tl.dot(qb, kb.to(tl.float32), input_precision=PREC)     # [rows, BC * TB]
            s = tl.where((n[None, :] // TB <= bi[:, None]) & (n[None, :] < NKEYS), s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            # rows with no causal key in this split yet keep m = -inf: subtract 0 instead (no -inf - -inf)
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            l_i = l_i * tl.exp2(m_i - m_safe) + tl.sum(tl.exp2(s - m_safe[:, None]), 1)
            m_i = m_new
        tl.store(STATS + sp * n_stats + srow, m_i)
        tl.store(STATS + (n_split + sp) * n_stats + srow, l_i)
    else:
        m_i = tl.full([GP * BI], float("-inf"), tl.float32)
        for s2 in range(0, n_split):                    # the row max over every split (split 0 has key 0)
            m_i = tl.maximum(m_i, tl.load(STATS + s2 * n_stats + srow))
        l_i = tl.zeros([GP * BI], tl.float32)
        for s2 in range(0, n_split):
            m_s = tl.load(STATS + s2 * n_stats + srow)               # -inf where the split had no key: 0
            l_i += tl.load(STATS + (n_split + s2) * n_stats + srow) * tl.exp2(m_s - m_i)
        inv = tl.where(h < G, 1.0 / (l_i * G), 0.0)    # padded heads contribute nothing
        ii = t * BI + tl.arange(0, BI)
        for n0 in range(n_lo, n_end, BC * TB):
            n = n0 + tl.arange(0, BC * TB)
            kb = tl.load(KEYS + u * skh + n[None, :] * skn + d[:, None], mask=n[None, :] < NKEYS, other=0.0)
            s = tl.dot(qb, kb.to(tl.float32), input_precision=PREC)
            s = tl.where((n[None, :] // TB <= bi[:, None]) & (n[None, :] < NKEYS), s, float("-inf"))
            p = tl.exp2(s - m_i[:, None]) * inv[:, None]
            pb = tl.sum(tl.reshape(p, (GP * BI, BC, TB)), 2)   # [rows, BC] mass per key block
            pu = tl.sum(tl.reshape(pb, (GP, BI, BC)), 0)        # [BI, BC]
            c = n0 // TB + tl.arange(0, BC)
            tl.store(P + (u * Mq + ii)[:, None] * Mk + c[None, :], pu,
                     mask=(ii[:, None] < Mq) & (c[None, :] < Mk))


@triton.jit
def row_masks(i, qb0, window, sinks, B: tl.constexpr, MKP: tl.constexpr):
    """[R, MKP] key-block masks of query blocks i [R]: causal, in window, window + sinks, candidates."""
    c = tl.arange(0, MKP)[None, :]
    bi = (qb0 + i)[:, None]
    lo = tl.maximum(bi * B - window, 0) // B
    causal = c <= bi
    base = causal & ((c >= lo) | (c < sinks))
    cand = causal & (c < lo) & (c >= sinks)
    return c, causal, c >= lo, base, cand


@triton.jit
def _row_stats_kernel(P, LOCAL, COVER, Mq, Mk, qb0, window, sinks, gamma,
                      FULL: tl.constexpr, B: tl.constexpr, R: tl.constexpr, MKP: tl.constexpr):
    """Local mass r and cover count k of R query blocks of KV head u; grid (cdiv(Mq, R), Hkv)."""
    i = tl.program_id(0) * R + tl.arange(0, R)
    u = tl.program_id(1)
    c, causal, in_window, base, cand = row_masks(i, qb0, window, sinks, B, MKP)
    row_ok = i < Mq
    cand = cand & row_ok[:, None]
    p = tl.load(P + (u * Mq + i)[:, None] * Mk + c, mask=causal & row_ok[:, None], other=0.0)
    tl.store(LOCAL + u * Mq + i, tl.sum(tl.where(in_window, p, 0.0), 1), mask=row_ok)
    pc = tl.where(cand, p, 0.0)
    if FULL:                                            # gamma == 1 keeps every candidate, even p == 0
        k = tl.sum(cand.to(tl.int32), 1)
    else:
        target = gamma * tl.sum(pc, 1)                  # [R]
        bits = pc.to(tl.int32, bitcast=True)            # p >= 0: float order == int order
        lo = tl.zeros([R], tl.int32)
        hi = tl.max(bits, 1)
        # largest threshold t with sum(p >= t) >= target: then t is the k-th largest value
        for _ in range(31):
            mid = lo + (hi - lo + 1) // 2
            ok = tl.sum(tl.where(bits >= mid[:, None], pc, 0.0), 1) >= target
            lo = tl.where(ok, mid, lo)
            hi = tl.where(ok, hi, mid - 1)
        t = lo.to(tl.float32, bitcast=True)             # [R] the k-th largest candidate value
        above = cand & (pc > t[:, None])
        m_above = tl.sum(tl.where(above, pc, 0.0), 1)
        n_tie = tl.sum((cand & (pc == t[:, None])).to(tl.int32), 1)
        need = tl.ceil((target - m_above) / tl.maximum(t, 1e-38)).to(tl.int32)   # ties needed at t
        k = tl.sum(above.to(tl.int32), 1) + tl.minimum(tl.maximum(need, 1), n_tie)
        k = tl.where(target > 0, k, 0)
    tl.store(COVER + u * Mq + i, k, mask=row_ok)


def pool_blocks(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """x [H, N, d] -> [H, cdiv(N, B), d] float32 block means (partial last block: mean of its rows)."""
    H, N, D = x.shape
    M = triton.cdiv(N, block_size)
    out = torch.empty(H, M, D, device=x.device, dtype=torch.float32)
    pb = max(1, 4096 // (block_size * D))               # ~4K elements per program
    _pool_kernel[(triton.cdiv(M, pb), H)](x, out, x.stride(0), x.stride(1), N, M, B=block_size, PB=pb, D=D)
    return out


def row_tile(Mk: int) -> dict:
    """Rows per program and padded row width for the per-row kernels: ~4K elements per program."""
    mkp = max(16, triton.next_power_of_2(Mk))
    return {"R": max(1, min(32, 4096 // mkp)), "MKP": mkp, "num_warps": 4 if mkp <= 512 else 8}


def key_splits(programs: int, n_keys: int, step: int, device: torch.device) -> int:
    """How many key ranges the block-probability kernel splits into: enough programs for ~2 waves of the
    GPU's SMs (1 on a CPU, where the interpreter gains nothing), at most one step of keys per split."""
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(triton.cdiv(2 * sms, programs), triton.cdiv(n_keys, step)))


def estimate(q: torch.Tensor, k: torch.Tensor, *, q_offset: int, params, scale: float,
             splits: int | None = None) -> Estimate:
    """Pooled block estimate of one prefill chunk.

    q [Hq, Nq, d] queries at absolute positions [q_offset, q_offset + Nq); k [Hkv, Nk, d] with
    Nk = q_offset + Nq; Hq = g * Hkv; d a power of two >= 16; `params` a `SparseParams`.
    splits: key ranges of the block-probability kernel (None: `key_splits`; tests force several)."""
    check_device(q, k)
    check_last_dim_contiguous(q=q, k=k)
    Hq, Nq, D = q.shape
    Hkv, Nk, Dk = k.shape
    B = params.block_size
    assert D == Dk and D >= 16 and D & (D - 1) == 0, f"head_dim must be a power of two >= 16, got {D}, {Dk}"
    assert Hq % Hkv == 0, f"query heads {Hq} must be a multiple of KV heads {Hkv}"
    assert q_offset % B == 0 and Nk == q_offset + Nq, (q_offset, Nq, Nk, B)
    G = Hq // Hkv
    Mq, Mk = triton.cdiv(Nq, B), triton.cdiv(Nk, B)
    # P pooled parts per query block, as P "virtual heads" of the group: query head h, part j -> h * P + j
    # (a missing part of a partial last block repeats the last one); the kernel averages over all G * P
    P = params.query_parts
    parts = pool_blocks(q, B // P)
    parts = parts[:, torch.arange(Mq * P, device=q.device).clamp(max=parts.shape[1] - 1)]
    qbar = parts.view(Hq, Mq, P, D).transpose(1, 2).reshape(Hq * P, Mq, D).contiguous()
    G = G * P
    # keys: every key row (TB = B), or their block means (pooled_keys: TB = 1, the first estimator)
    keys, TB, n_keys = (pool_blocks(k, B), 1, Mk) if params.pooled_keys else (k, B, Nk)
    probs = torch.zeros(Hkv, Mq, Mk, device=q.device, dtype=torch.float32)
    GP = triton.next_power_of_2(G)
    # 64 (head, query block) rows x 32 key rows (pooled) or one block of keys per step, one stage:
    # fp32 operands split for tf32x3 need ~100 KB of shared memory at d = 128 with 32 columns
    # (128 rows, 64 columns, 3 stages needed 256 KB)
    BI = max(1, 64 // GP)
    BC = 32 if TB == 1 else max(1, 32 // TB)
    tiles, step = triton.cdiv(Mq, BI), BC * TB
    n_split = splits or key_splits(tiles * Hkv, n_keys, step, q.device)
    split_keys = triton.cdiv(triton.cdiv(n_keys, n_split), step) * step       # whole steps (so whole blocks)
    n_split = triton.cdiv(n_keys, split_keys)
    stats = torch.empty(2, n_split, tiles * Hkv * GP * BI, device=q.device, dtype=torch.float32)
    for pass_ in (1, 2):
        _block_probs_kernel[(tiles, Hkv, n_split)](
            qbar, keys, probs, stats, scale * LOG2E, keys.stride(0), keys.stride(1), Mq, Mk, n_keys, q_offset // B,
            n_split, split_keys, G=G, GP=GP, BI=BI, BC=BC, TB=TB, D=D,
            PREC="ieee" if q.dtype == torch.float32 else "tf32x3", PASS=pass_, num_warps=4, num_stages=1)
    local = torch.empty(Hkv, Mq, device=q.device, dtype=torch.float32)
    cover = torch.empty(Hkv, Mq, device=q.device, dtype=torch.int32)
    tile = row_tile(Mk)
    _row_stats_kernel[(triton.cdiv(Mq, tile["R"]), Hkv)](
        probs, local, cover, Mq, Mk, q_offset // B, params.window, params.sink_blocks, float(params.gamma),
        FULL=params.gamma >= 1.0, B=B, **tile)
    return Estimate(probs, local, cover)
