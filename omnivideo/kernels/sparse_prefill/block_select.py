"""Key-block selection of a prefill chunk from its estimate (OmniSparse mechanisms 1 and 2), in Triton.

    lazy, flat, budget, stats = plan_blocks(est, dense_rows, q_offset=0, params=p)   # stats: [kept, longest list]
    idx, cnt = select_blocks(est.block_probs, budget, lazy, flat, dense_rows, q_offset=0, params=p, width=width)

Semantics: `omnivideo.kernels.sparse_prefill.reference.block_lists_reference`. The plan kernel does the
per-query-block bookkeeping (lazy heads, flat heads, shared budget, list lengths) and reduces the chunk's kept
total on the device, so a plan costs one host sync; the select kernel finds each head's top-K by
bisection on the float bit pattern and compacts the kept blocks in ascending order.
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device
from omnivideo.kernels.sparse_prefill.estimate import Estimate, row_masks, row_tile


@triton.jit
def _plan_kernel(LOCAL, COVER, DENSE, LAZY, FLAT, BUDGET, STATS, Hkv, Mq, qb0, window, sinks, min_blocks,
                 theta, density, FORCE: tl.constexpr, FLATHEADS: tl.constexpr, B: tl.constexpr, R: tl.constexpr,
                 HP: tl.constexpr):
    """Per query block i: lazy heads, flat heads, the shared budget K_i and list lengths; grid (cdiv(Mq, R),).
    STATS[0] += kept blocks, STATS[1] = max(list length): the plan's only host sync reads them."""
    i = tl.program_id(0) * R + tl.arange(0, R)
    u = tl.arange(0, HP)[:, None]
    row_ok = i < Mq
    ok = (u < Hkv) & row_ok[None, :]                    # [HP, R]
    bi = qb0 + i
    lo = tl.maximum(bi * B - window, 0) // B
    n_sinks = tl.minimum(lo, sinks)
    n_cand = lo - n_sinks
    base = bi - lo + 1 + n_sinks                        # local window + sinks outside it
    dense = tl.load(DENSE + i, mask=row_ok, other=0) != 0
    r = tl.load(LOCAL + u * Mq + i[None, :], mask=ok, other=0.0)
    lazy = ok & (r >= theta) & ~dense[None, :]          # theta > 1 (host) when nothing may be lazy
    flat = lazy & False
    if FORCE:                                           # bench: about `density` of each row's causal blocks
        budget = tl.minimum(tl.maximum(tl.floor(density * (bi + 1) + 0.5).to(tl.int32) - base, 0), n_cand)
    else:
        active = ok & ~lazy
        cover = tl.where(active, tl.load(COVER + u * Mq + i[None, :], mask=active, other=0), -1)
        n_active = tl.sum(active.to(tl.int32), 0)
        if FLATHEADS:
            # each head v tried as the flattest sparse one: heads above it run dense (n_cand each),
            # the rest share its clipped count; the cheapest v wins, ties to the larger count
            best_cost = tl.full([R], 2147483647, tl.int32)
            best_k = tl.full([R], -1, tl.int32)
            for v in tl.static_range(HP):
                cv = tl.sum(tl.where(u == v, cover, 0), 0)                       # -1 if v is not active
                n_more = tl.sum((active & (cover > cv[None, :])).to(tl.int32), 0)
                cost = n_more * n_cand + (n_active - n_more) * tl.minimum(tl.maximum(cv, min_blocks), n_cand)
                better = (cv >= 0) & ((cost < best_cost) | ((cost == best_cost) & (cv > best_k)))
                best_cost = tl.where(better, cost, best_cost)
                best_k = tl.where(better, cv, best_k)
            flat = active & (cover > best_k[None, :]) & ~dense[None, :]
        # the flattest active, non-flat head sets the budget; lazy and flat heads take no top-K
        budget = tl.minimum(tl.maximum(tl.max(tl.where(flat, -1, cover), 0), min_blocks), n_cand)
        budget = tl.where(n_active > 0, budget, 0)
    budget = tl.where(dense, n_cand, budget)
    count = tl.where(lazy, base[None, :], (base + budget)[None, :])
    count = tl.where(flat, (bi + 1)[None, :], count)
    count = tl.where(ok, tl.where(dense[None, :], (bi + 1)[None, :], count), 0)
    tl.store(LAZY + u * Mq + i[None, :], lazy.to(tl.int8), mask=ok)
    tl.store(FLAT + u * Mq + i[None, :], flat.to(tl.int8), mask=ok)
    tl.store(BUDGET + i, budget, mask=row_ok)
    tl.atomic_add(STATS, tl.sum(tl.sum(count, 1), 0))
    tl.atomic_max(STATS + 1, tl.max(tl.max(count, 1), 0))


@triton.jit
def _select_kernel(P, BUDGET, LAZY, FLAT, DENSE, IDX, CNT, Mq, Mk, qb0, window, sinks, S,
                   B: tl.constexpr, R: tl.constexpr, MKP: tl.constexpr):
    """Sorted key-block lists of R query blocks of KV head u: local window + sinks, plus (active rows)
    the head's own top-BUDGET[i] candidates, or every causal block (dense and flat rows);
    grid (cdiv(Mq, R), Hkv)."""
    i = tl.program_id(0) * R + tl.arange(0, R)
    u = tl.program_id(1)
    c, causal, in_window, base, cand = row_masks(i, qb0, window, sinks, B, MKP)
    row_ok = i < Mq
    cand = cand & row_ok[:, None]
    p = tl.load(P + (u * Mq + i)[:, None] * Mk + c, mask=cand, other=0.0)
    k = tl.load(BUDGET + i, mask=row_ok, other=0)
    k = tl.where(tl.load(LAZY + u * Mq + i, mask=row_ok, other=1) != 0, 0, k)
    bits = p.to(tl.int32, bitcast=True)
    lo = tl.zeros([R], tl.int32)
    hi = tl.max(bits, 1)
    # largest threshold t with count(p >= t) >= k: t is the k-th largest candidate value
    for _ in range(31):
        mid = lo + (hi - lo + 1) // 2
        ok = tl.sum((cand & (bits >= mid[:, None])).to(tl.int32), 1) >= k
        lo = tl.where(ok, mid, lo)
        hi = tl.where(ok, hi, mid - 1)
    sel = cand & (bits > lo[:, None])
    tie = cand & (bits == lo[:, None])                  # ties at the threshold: lowest indices first
    need = k - tl.sum(sel.to(tl.int32), 1)
    sel = sel | (tie & (tl.cumsum(tie.to(tl.int32), 1) <= need[:, None]))
    dense = (tl.load(DENSE + i, mask=row_ok, other=0) != 0) | (tl.load(FLAT + u * Mq + i, mask=row_ok, other=0) != 0)
    keep = (base | sel | (causal & dense[:, None])) & row_ok[:, None]
    pos = tl.cumsum(keep.to(tl.int32), 1) - 1           # compaction keeps ascending order
    tl.store(IDX + (u * Mq + i)[:, None] * S + pos, c.to(tl.int32), mask=keep)
    tl.store(CNT + u * Mq + i, tl.sum(keep.to(tl.int32), 1), mask=row_ok)


def plan_blocks(est: Estimate, dense_rows: torch.Tensor, *, q_offset: int, params,
                force_density: float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lazy heads, flat heads, shared budgets and list lengths of a chunk (semantics: `block_lists_reference`).

    dense_rows [Mq] int8, forced-dense (text) query blocks. force_density: bench only, every head
    active with K_i = floor(force_density * causal_i + 0.5) - local_i - sinks_i (clipped).
    Returns lazy, flat [Hkv, Mq] int8, budget [Mq] int32 and stats [2] int32 on the device: kept blocks and
    the longest list (reading them is the plan's one host sync, needed only to decide the fallback)."""
    check_device(est.local_mass, est.cover_count, dense_rows)
    Hkv, Mq = est.local_mass.shape
    assert dense_rows.shape == (Mq,) and dense_rows.dtype == torch.int8, (dense_rows.shape, dense_rows.dtype)
    dev = est.local_mass.device
    lazy = torch.empty(Hkv, Mq, device=dev, dtype=torch.int8)
    flat = torch.empty(Hkv, Mq, device=dev, dtype=torch.int8)
    budget = torch.empty(Mq, device=dev, dtype=torch.int32)
    stats = torch.zeros(2, device=dev, dtype=torch.int32)
    R = 64
    _plan_kernel[(triton.cdiv(Mq, R),)](
        est.local_mass, est.cover_count, dense_rows, lazy, flat, budget, stats, Hkv, Mq,
        q_offset // params.block_size, params.window, params.sink_blocks, params.min_blocks,
        # full budget (gamma 1) and forced densities have no lazy rows: a threshold r never reaches
        2.0 if params.gamma >= 1.0 or force_density is not None else float(params.theta_local),
        float(force_density or 0.0), FORCE=force_density is not None,
        FLATHEADS=params.flat_heads and params.gamma < 1.0, B=params.block_size, R=R,
        HP=max(2, triton.next_power_of_2(Hkv)))
    return lazy, flat, budget, stats


def select_blocks(probs: torch.Tensor, budget: torch.Tensor, lazy: torch.Tensor, flat: torch.Tensor,
                  dense_rows: torch.Tensor, *, q_offset: int, params, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(KV head, query block) sorted key-block lists.

    probs [Hkv, Mq, Mk] float32 (Estimate.block_probs); budget [Mq] int32, K_i (<= candidates);
    lazy, flat [Hkv, Mq] int8; dense_rows [Mq] int8; width >= the longest list (`plan_blocks`).
    Returns block_idx [Hkv, Mq, width] int32 (ascending, -1 padded) and block_count [Hkv, Mq] int32."""
    check_device(probs, budget, lazy, flat, dense_rows)
    Hkv, Mq, Mk = probs.shape
    assert probs.dtype == torch.float32 and probs.is_contiguous()
    assert budget.shape == (Mq,) and lazy.shape == (Hkv, Mq) and dense_rows.shape == (Mq,)
    assert flat.shape == (Hkv, Mq)
    assert budget.dtype == torch.int32 and lazy.dtype == flat.dtype == dense_rows.dtype == torch.int8
    idx = torch.full((Hkv, Mq, max(width, 1)), -1, device=probs.device, dtype=torch.int32)
    cnt = torch.empty(Hkv, Mq, device=probs.device, dtype=torch.int32)
    tile = row_tile(Mk)
    _select_kernel[(triton.cdiv(Mq, tile["R"]), Hkv)](
        probs, budget, lazy, flat, dense_rows, idx, cnt, Mq, Mk, q_offset // params.block_size,
        params.window, params.sink_blocks, idx.shape[2], B=params.block_size, **tile)
    return idx, cnt
