"""Pure-PyTorch definitions of the OmniSparse prefill ops: the spec the Triton kernels are tested against.

Notation: one prefill chunk holds queries at absolute positions [q_offset, q_offset + Nq) that attend
causally to keys [0, Nk), Nk = q_offset + Nq, q_offset a multiple of the block size B.
q [Hq, Nq, d], k/v [Hkv, Nk, d], Hq = g * Hkv (query head h reads KV head h // g).
Mq = cdiv(Nq, B) query blocks; query block i is absolute block bi = q_offset / B + i; Mk = cdiv(Nk, B).

Definitions (fp32 throughout):
- pooling: qbar[h, i] / kbar[u, c] = mean of the q / k rows of block i / c (partial last block: the
  mean of the rows it has).
- query parts: P = query_parts pooled queries per query block, qpart[h, i, j] = mean of the q rows
  [i B + j B / P, i B + (j + 1) B / P) (the rows it has); a part of the partial last block with no row
  repeats the chunk's last non-empty part.
- block mass p[h, i, j, c] = sum over the keys t of block c of softmax_t(qpart[h, i, j] . k[h // g, t] *
  scale), the softmax over the keys of the causal blocks (c <= bi); with `pooled_keys` instead
  softmax_c of qpart[h, i, j] . kbar[h // g, c] * scale (block-mean keys); p_u[u, i, c] = mean of p
  over the g query heads of KV head u and the P parts.
- local window of query block i: key blocks lo_i .. bi, lo_i = max(0, bi * B - window) // B (the
  blocks that cover [bi * B - window, end of block i]); sinks: blocks c < sink_blocks.
- local mass r[u, i] = sum of p_u over the local window.
- candidates R_i: causal blocks outside the window and the sinks. Cover count k[u, i]: fewest
  candidates (largest p_u first) whose mass reaches gamma * (mass of p_u on R_i); gamma = 1 -> |R_i|.
- lazy[u, i] = r >= theta_local, query block i is not a forced-dense (text) row and gamma < 1
  (gamma = 1 is the full budget: every causal block is kept, so the sparse path is exact).
- flat heads (params.flat_heads, gamma < 1, not forced-dense rows): among the active heads of query
  block i, each head v is tried as the flattest *sparse* one: the heads with a larger cover count than
  k[v, i] run dense, the rest share K = clip(k[v, i], min_blocks, |R_i|), which keeps
  (#denser) * |R_i| + (#rest) * K candidate blocks. The cheapest v is chosen (ties: the larger k[v, i],
  i.e. fewer dense heads); flat[u, i] = active and k[u, i] > k[v, i]. The first rule (every active head
  shares the flattest one's budget) is the case v = the flattest head, so this never keeps more blocks.
- budget K_i = clip(max over the active, non-flat heads of k[u, i], min_blocks, |R_i|); 0 if every
  head is lazy; |R_i| for forced-dense rows.
- list(u, i) = sinks + local window, plus (active) the K_i candidates with the largest p_u of head u,
  or (forced dense, flat) every causal block; ascending.
- fallback: when kept / causal blocks over the chunk exceeds dense_fallback, every list is dense.
- attention: causal softmax attention of each query row over the keys of its list's blocks.
"""
import torch

from omnivideo.kernels.sparse_prefill.sparse_plan import BlockLists, SparseParams
from omnivideo.kernels.sparse_prefill.estimate import Estimate


def pool_reference(x: torch.Tensor, block_size: int) -> torch.Tensor:
    """x [H, N, d] -> [H, cdiv(N, B), d] float32 block means."""
    H, N, D = x.shape
    M = -(-N // block_size)
    padded = torch.zeros(H, M * block_size, D, dtype=torch.float32, device=x.device)
    padded[:, :N] = x.float()
    rows = torch.full((M,), block_size, dtype=torch.float32, device=x.device)
    rows[-1] = N - (M - 1) * block_size
    return padded.view(H, M, block_size, D).sum(2) / rows[None, :, None]


def block_windows_reference(q_offset: int, Mq: int, Mk: int, params: SparseParams, device) -> tuple:
    """[Mq, Mk] bool masks of a chunk's query blocks: causal, local window, candidates (causal
    blocks outside the window and the sinks)."""
    B = params.block_size
    bi = q_offset // B + torch.arange(Mq, device=device)[:, None]
    c = torch.arange(Mk, device=device)[None, :]
    lo = (bi * B - params.window).clamp_min(0) // B
    causal = c <= bi
    local = causal & (c >= lo)
    cand = causal & ~local & (c >= params.sink_blocks)
    return causal, local, cand


def estimate_reference(q: torch.Tensor, k: torch.Tensor, *, q_offset: int, params: SparseParams,
                       scale: float) -> Estimate:
    """Estimate of one chunk: block_probs p_u [Hkv, Mq, Mk], local_mass r and cover_count k [Hkv, Mq]."""
    B = params.block_size
    Hq, Nq, _ = q.shape
    Hkv, Nk, _ = k.shape
    g = Hq // Hkv
    P = params.query_parts
    Mq, Mk = -(-Nq // B), -(-Nk // B)
    parts = pool_reference(q, B // P)                                          # [Hq, n <= Mq * P, d]
    parts = parts[:, torch.arange(Mq * P, device=q.device).clamp(max=parts.shape[1] - 1)].view(Hq, Mq, P, -1)
    causal, local, cand = block_windows_reference(q_offset, Mq, Mk, params, q.device)
    key_block = torch.arange(Nk, device=q.device) // B
    kbar = pool_reference(k, B) if params.pooled_keys else None
    p = torch.zeros(Hq, Mq, Mk, dtype=torch.float32, device=q.device)
    for h in range(Hq):                  # one head and part at a time: [Mq, Nk] scores
        for j in range(P):
            if params.pooled_keys:
                s = (parts[h, :, j] @ kbar[h // g].T) * scale
                p[h] += torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1) / P
            else:
                s = (parts[h, :, j] @ k[h // g].float().T) * scale
                pk = torch.softmax(s.masked_fill(~causal[:, key_block], float("-inf")), dim=-1)
                p[h] += torch.zeros(Mq, Mk, device=q.device).index_add_(1, key_block, pk) / P
    pu = p.view(Hkv, g, Mq, Mk).mean(1)
    local_mass = (pu * local).sum(-1)
    if params.gamma >= 1.0:
        cover = cand.sum(-1).expand(Hkv, Mq)
    else:
        vals = torch.where(cand, pu, 0.0).sort(dim=-1, descending=True).values
        target = params.gamma * vals.sum(-1, keepdim=True)
        cover = (vals.cumsum(-1) < target).sum(-1) + 1          # first prefix reaching the target
        cover = cover.minimum(cand.sum(-1)).masked_fill(target[..., 0] <= 0, 0)
    return Estimate(pu, local_mass, cover.to(torch.int32).contiguous())


def block_lists_reference(est: Estimate, *, q_offset: int, Nk: int, params: SparseParams,
                          force_dense_rows: torch.Tensor | None = None) -> BlockLists:
    """Lists of one chunk from an estimate, by the definitions above (masks and a full sort)."""
    pu = est.block_probs
    Hkv, Mq, Mk = pu.shape
    causal, local, cand = block_windows_reference(q_offset, Mq, Mk, params, pu.device)
    sink = causal & (torch.arange(Mk, device=pu.device) < params.sink_blocks)
    dense_rows = torch.zeros(Mq, dtype=torch.bool, device=pu.device) if force_dense_rows is None \
        else force_dense_rows.bool()
    lazy = (est.local_mass >= params.theta_local) & ~dense_rows[None, :] & (params.gamma < 1.0)
    n_cand = cand.sum(-1)
    flat = flat_heads_reference(est.cover_count, lazy, n_cand, params) & ~dense_rows[None, :]
    k_max = torch.where(lazy | flat, 0, est.cover_count.long()).amax(0)
    budget = k_max.clamp_min(params.min_blocks).minimum(n_cand)
    budget = torch.where(lazy.all(0), 0, budget)
    budget = torch.where(dense_rows, n_cand, budget)
    # rank candidates per (u, i) by p_u, descending; keep the first K_i of active rows
    order = torch.where(cand, pu, -1.0).argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(Mk, device=pu.device).expand_as(order))
    top = cand & (rank < budget[None, :, None]) & ~lazy[..., None]
    top = top & ~flat[..., None]
    keep = local | sink | top | (causal & dense_rows[:, None]) | (causal & flat[..., None])
    keep = keep.expand(Hkv, Mq, Mk)
    kept, total = keep.sum().item(), Hkv * causal.sum().item()
    sparse_density = kept / total
    dense = sparse_density > params.dense_fallback
    if dense:
        keep = causal.expand(Hkv, Mq, Mk)
        lazy, flat = torch.zeros_like(lazy), torch.zeros_like(flat)
    count = keep.sum(-1)
    width = int(count.max())
    c = torch.arange(Mk, device=pu.device).expand(Hkv, Mq, Mk)
    idx = torch.where(keep, c, Mk).sort(dim=-1).values[..., :width]
    idx = torch.where(idx == Mk, -1, idx)
    return BlockLists(idx.to(torch.int32).contiguous(), count.to(torch.int32), budget.to(torch.int32), lazy,
                      1.0 if dense else sparse_density, dense, params.block_size, sparse_density, flat)


def flat_heads_reference(cover: torch.Tensor, lazy: torch.Tensor, n_cand: torch.Tensor,
                         params: SparseParams) -> torch.Tensor:
    """[Hkv, Mq] bool: heads that run dense rows of their own (the flat-heads rule above).
    cover [Hkv, Mq] cover counts, lazy [Hkv, Mq] bool, n_cand [Mq] candidates per query block."""
    active = ~lazy
    if not params.flat_heads or params.gamma >= 1.0:
        return torch.zeros_like(lazy)
    ca = torch.where(active, cover.long(), -1)                                  # [Hkv, Mq]
    K = ca.clamp_min(params.min_blocks).minimum(n_cand[None, :])                # budget if v sets it
    n_more = ((ca[:, None, :] > ca[None, :, :]) & active[:, None, :]).sum(0)    # [v, i]: active heads above v
    cost = n_more * n_cand[None, :] + (active.sum(0)[None, :] - n_more) * K
    # cheapest v; ties: the larger cover count (cost * big - k orders both at once)
    key = torch.where(active, cost * (n_cand.max() + 2) - ca, torch.iinfo(torch.int64).max)
    best = ca.gather(0, key.argmin(0)[None, :])[0]                              # [Mq], -1 if none active
    return active & (ca > best[None, :])


def block_mask_reference(lists: BlockLists, Mk: int) -> torch.Tensor:
    """[Hkv, Mq, Mk] bool: key block c is in the list of (KV head u, query block i)."""
    Hkv, Mq, _ = lists.block_idx.shape
    blocks = torch.zeros(Hkv, Mq, Mk + 1, dtype=torch.bool, device=lists.block_idx.device)
    blocks.scatter_(-1, torch.where(lists.block_idx < 0, Mk, lists.block_idx).long(), True)
    return blocks[..., :Mk]


def key_mask_reference(lists: BlockLists, *, q_offset: int, Nq: int, Nk: int) -> torch.Tensor:
    """[Hkv, Nq, Nk] bool: key j is attended by query row t of KV head u (listed block and causal)."""
    B = lists.block_size
    blocks = block_mask_reference(lists, -(-Nk // B))
    tokens = blocks.repeat_interleave(B, 1)[:, :Nq].repeat_interleave(B, 2)[..., :Nk]
    qpos = q_offset + torch.arange(Nq, device=tokens.device)[:, None]
    return tokens & (torch.arange(Nk, device=tokens.device)[None, :] <= qpos)


def block_sparse_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lists: BlockLists,
                                     *, q_offset: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """out [Hq, Nq, d] (q.dtype) and lse [Hq, Nq] float32: softmax attention of each query row over
    the keys of its (KV head, query block) list, causal."""
    Hq, Nq, _ = q.shape
    Hkv, Nk, _ = k.shape
    g = Hq // Hkv
    mask = key_mask_reference(lists, q_offset=q_offset, Nq=Nq, Nk=Nk).repeat_interleave(g, 0)
    s = torch.einsum("hqd,hkd->hqk", q.float(), k.float().repeat_interleave(g, 0)) * scale
    s = s.masked_fill(~mask, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    out = torch.einsum("hqk,hkd->hqd", torch.exp(s - lse[..., None]), v.float().repeat_interleave(g, 0))
    return out.to(q.dtype), lse
