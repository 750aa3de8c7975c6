"""OmniSparse prefill plan: parameters, estimate -> per-(KV head, query block) key-block lists, and
the one call the engine uses (`sparse_attention`).

    params = SparseParams(gamma=0.95)
    out, lse, lists = sparse_attention(q, k, v, q_offset=0, params=params, scale=d ** -0.5)
    lists.density, lists.dense            # share of causal blocks kept; True when the fallback fired

Mechanism 1 (lazy / active query blocks) and mechanism 2 (head-shared budget) of method.md. The
exact semantics are written once, in `omnivideo.kernels.sparse_prefill.reference`; this module chains the
Triton kernels (`estimate`, `plan_blocks`, `select_blocks`, `block_sparse_attention`).
"""
from dataclasses import dataclass, replace

import torch

from omnivideo.kernels.sparse_prefill.block_select import plan_blocks, select_blocks
from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention
from omnivideo.kernels.sparse_prefill.estimate import Estimate, estimate


@dataclass(frozen=True, slots=True)
class SparseParams:
    """Knobs of the sparse prefill. Plain ValueError: `omnivideo/kernels/` imports nothing of the project."""
    block_size: int = 64
    gamma: float = 0.95          # cover fraction of the non-local estimated mass; 1.0 = full budget:
    #                              no lazy rows and every block kept (the sparse path is then exact)
    theta_local: float = 0.9     # a (KV head, query block) is lazy when its local mass >= this
    window: int = 512            # local window: own block plus the previous `window` tokens
    min_blocks: int = 4          # lower clip of the shared budget K
    sink_blocks: int = 1         # leading key blocks that are always kept
    dense_fallback: float = 0.6  # kept share of causal blocks above which the chunk runs dense
    pooled_keys: bool = False    # estimate with block-mean keys (1/B^2 of dense) instead of every key
    #                              (1/(2B)): cheaper, but loses recall where single keys matter
    query_parts: int = 2         # a query block is estimated from this many pooled parts (means of
    #                              B / parts rows), their block masses averaged: rows of one block that
    #                              want different frames are not averaged into one query first
    flat_heads: bool = True      # a head whose cover count would raise everyone's budget more than it
    #                              saves runs dense rows of its own; the others share the flattest
    #                              *sparse* head's budget (method.md, mechanism 2). False: the flattest
    #                              active head sets the budget for all (the first rule)

    def __post_init__(self):
        b = self.block_size
        if b < 16 or b & (b - 1):
            raise ValueError(f"block_size must be a power of two >= 16, got {b}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 < self.theta_local <= 1.0:
            raise ValueError(f"theta_local must be in (0, 1], got {self.theta_local}")
        if self.window < 0 or self.min_blocks < 0 or self.sink_blocks < 0:
            raise ValueError(f"window, min_blocks and sink_blocks must be >= 0, got "
                             f"{self.window}, {self.min_blocks}, {self.sink_blocks}")
        if not 0.0 < self.dense_fallback <= 1.0:
            raise ValueError(f"dense_fallback must be in (0, 1], got {self.dense_fallback}")
        p = self.query_parts
        if p < 1 or p & (p - 1) or p > b:
            raise ValueError(f"query_parts must be a power of two in [1, block_size], got {p}")

    def for_frames(self, frame_tokens: int) -> "SparseParams":
        """These params with the local window that follows the frame size: the own block plus the previous
        2 x `frame_tokens` (the tokens of one temporal frame group), never less than `window`."""
        return replace(self, window=max(self.window, 2 * int(frame_tokens)))


@dataclass(frozen=True)
class BlockLists:
    """Key blocks each (KV head, query block) attends to.

    block_idx [Hkv, Mq, S] int32: absolute key-block indices, sorted ascending, padded with -1; the
        last valid entry of row (u, i) is its diagonal block q_offset // B + i.
    block_count [Hkv, Mq] int32: valid entries per row.
    budget [Mq] int32: the shared K of each query block (0 where every head is lazy).
    lazy [Hkv, Mq] bool: rows that attend to their local window (+ sinks) only.
    flat [Hkv, Mq] bool: rows of heads found flat online (`SparseParams.flat_heads`): they attend to every
        causal block, and their cover counts do not set the shared budget.
    density: kept / causal blocks over the chunk; 1.0 when `dense` (a float; reading it may sync).
    dense: the dense fallback fired: the lists hold every causal block.
    sparse_density: the density the sparse lists would have had (== density unless `dense`).
    kept_share: `density` as built: a float, or a 0-d device tensor when the plan had no fallback to
        decide and so never synchronised (forced densities, dense_fallback 1.0): stats can keep it
        and read it later.
    """
    block_idx: torch.Tensor
    block_count: torch.Tensor
    budget: torch.Tensor
    lazy: torch.Tensor
    kept_share: float | torch.Tensor
    dense: bool
    block_size: int
    _sparse_density: float | torch.Tensor
    flat: torch.Tensor | None = None

    @property
    def density(self) -> float:
        return float(self.kept_share)

    @property
    def sparse_density(self) -> float:
        return float(self._sparse_density)


def _dense_lists(Hkv: int, Mq: int, Mk: int, q_offset: int, block_size: int, device) -> tuple:
    """Every causal block: [Hkv, Mq, Mk] int32 lists and [Hkv, Mq] int32 counts."""
    bi = q_offset // block_size + torch.arange(Mq, device=device)
    c = torch.arange(Mk, device=device)
    idx = torch.where(c[None, :] <= bi[:, None], c[None, :], -1).to(torch.int32)
    return idx.expand(Hkv, Mq, Mk).contiguous(), (bi + 1).to(torch.int32).expand(Hkv, Mq).contiguous()


def build_block_lists(est: Estimate, *, q_offset: int, Nk: int, params: SparseParams,
                      force_dense_rows: torch.Tensor | None = None,
                      force_density: float | None = None) -> BlockLists:
    """Turn an `Estimate` into sorted key-block lists (semantics: `reference.block_lists_reference`).

    force_dense_rows: bool [Mq], query blocks that attend to every causal block (text rows).
    force_density: bench only. Every row is active and takes its own top-K_i non-local blocks with
        K_i = floor(force_density * causal_i + 0.5) - local_i - sinks_i (clipped), so the chunk keeps
        about that share of causal blocks (never less than the local windows); the fallback is off.
    """
    B = params.block_size
    Hkv, Mq, Mk = est.block_probs.shape
    assert q_offset % B == 0 and Mk == -(-Nk // B) and q_offset // B + Mq == Mk, (q_offset, Nk, Mq, Mk)
    assert force_density is None or 0.0 < force_density <= 1.0, force_density
    dev = est.block_probs.device
    dense_rows = (torch.zeros(Mq, dtype=torch.int8, device=dev) if force_dense_rows is None
                  else force_dense_rows.to(device=dev, dtype=torch.int8))
    lazy, flat, budget, stats = plan_blocks(est, dense_rows, q_offset=q_offset, params=params,
                                            force_density=force_density)
    qb0 = q_offset // B
    causal = Hkv * (Mq * qb0 + Mq * (Mq + 1) // 2)   # causal blocks: sum of qb0 + i + 1
    if force_density is not None or params.dense_fallback >= 1.0:
        # no fallback to decide: no host sync; lists as wide as the longest possible one (Mk)
        sparse_density, width = stats[0] / causal, Mk
    else:
        kept, width = stats.tolist()
        sparse_density = kept / causal
        if sparse_density > params.dense_fallback:
            idx, cnt = _dense_lists(Hkv, Mq, Mk, q_offset, B, dev)
            none = torch.zeros(Hkv, Mq, dtype=torch.bool, device=dev)
            return BlockLists(idx, cnt, budget, none, 1.0, True, B, sparse_density, none)
    idx, cnt = select_blocks(est.block_probs, budget, lazy, flat, dense_rows, q_offset=q_offset, params=params,
                             width=width)
    return BlockLists(idx, cnt, budget, lazy.view(torch.bool), sparse_density, False, B, sparse_density,
                      flat.view(torch.bool))


def sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, q_offset: int,
                     params: SparseParams, scale: float, force_dense_rows: torch.Tensor | None = None,
                     force_density: float | None = None) -> tuple[torch.Tensor, torch.Tensor, BlockLists]:
    """Sparse causal prefill of one chunk: estimate -> lists -> block-sparse attention.

    q [Hq, Nq, d]; k, v [Hkv, Nk, d] with Nk = q_offset + Nq. Returns out [Hq, Nq, d] (q.dtype),
    lse [Hq, Nq] float32 (natural log) and the `BlockLists` used (dense when the fallback fired).
    """
    est = estimate(q, k, q_offset=q_offset, params=params, scale=scale)
    lists = build_block_lists(est, q_offset=q_offset, Nk=k.shape[1], params=params,
                              force_dense_rows=force_dense_rows, force_density=force_density)
    out, lse = block_sparse_attention(q, k, v, lists, q_offset=q_offset, scale=scale)
    return out, lse, lists
