"""Mechanism 3: per-KV-head visual KV slimming for decoding, and the packed layout the decode kernel reads.

After the (dense, exact) question prefill, the attention of the last `observe` prompt tokens tells
which visual tokens each KV head uses. Each head keeps the smallest set of visual tokens covering
`gamma_decode` of its visual mass (at least `min_tokens`); text and sink tokens are always kept.
Budgets differ per head, so the kept KV is packed head after head (CSR layout):

    packed.k[offsets[u]:offsets[u+1]]  = k[u, keep[u]]        (keep[u] sorted by position)

Usage:
    keep = select_slim_tokens(obs_attn, visual_mask, SlimParams(), num_kv_heads=4)
    packed = pack_kv(k, v, keep, device="cuda")               # k, v [Hkv, N, d] may live on the host
    out = decode_attention(q, packed, tail, scale=d ** -0.5)  # omnivideo.kernels.decode.decode_attention

Pure torch: selection runs once per question and layer, and packing is one gather per layer.
"""
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SlimParams:
    """Knobs of the per-head selection (one set per model; all layers use it)."""

    gamma_decode: float = 0.95  # keep the smallest visual set covering this share of each KV head's visual mass
    min_tokens: int = 256  # per-head lower bound (clipped to the number of visual tokens)
    pool: int = 3  # neighbourhood pooling of scores along the visual tokens (odd; 1 = none)

    def __post_init__(self):
        if not 0.0 < self.gamma_decode <= 1.0:
            raise ValueError(f"gamma_decode must be in (0, 1], got {self.gamma_decode}")
        if self.min_tokens < 0:
            raise ValueError(f"min_tokens must be >= 0, got {self.min_tokens}")
        if self.pool < 1 or self.pool % 2 == 0:
            raise ValueError(f"pool must be an odd integer >= 1, got {self.pool}")


@dataclass(frozen=True)
class PackedKV:
    """Per-KV-head slimmed KV of one layer, packed head after head.

    k, v     [capacity, d]  rows 0..total-1 used; head u owns rows offsets[u]:offsets[u+1]
    offsets  [Hkv + 1] int32 on the device of k (the decode kernel reads per-head lengths there)
    lengths  host copy of the per-head row counts (fixed for one question: sizes launch grids
             without a device sync)
    ends     None, or [Hkv] int32: head u owns rows offsets[u]:ends[u] instead, with gaps between
             heads allowed. `alias_kv` uses it to read a cache's [Hkv, capacity, d] buffer in place
             (every row kept, nothing copied).
    """

    k: torch.Tensor
    v: torch.Tensor
    offsets: torch.Tensor
    lengths: tuple[int, ...]
    ends: torch.Tensor | None = None

    @property
    def head_ends(self) -> torch.Tensor:
        """[Hkv] int32: one past each head's last row (a view of offsets when packed without gaps)."""
        return self.offsets[1:] if self.ends is None else self.ends

    @property
    def aliased(self) -> bool:
        """The rows are another buffer's (a cache), not a copy."""
        return self.ends is not None

    @property
    def num_kv_heads(self) -> int:
        return len(self.lengths)

    @property
    def total(self) -> int:
        return sum(self.lengths)

    @property
    def capacity(self) -> int:
        return self.k.shape[0]


def visual_scores(obs_attn: torch.Tensor, visual_mask: torch.Tensor, num_kv_heads: int, pool: int) -> torch.Tensor:
    """Pooled per-KV-head scores of the visual tokens.

    Args:
        obs_attn: [Hq, T_obs, N] softmax attention of the observation rows over all N keys.
        visual_mask: [N] bool, True for visual tokens.
    Returns:
        [Hkv, V] float32 (float64 for float64 input), V = visual_mask.sum(): attention summed over the
        group's g query heads and the T_obs rows, then averaged over `pool` neighbours along the visual
        tokens (edges average over the neighbours that exist).
    """
    hq, t_obs, n = obs_attn.shape
    assert hq % num_kv_heads == 0, f"Hq={hq} is not a multiple of Hkv={num_kv_heads}"
    assert visual_mask.shape == (n,) and visual_mask.dtype == torch.bool
    # Sum over rows first: the [Hkv, g, T, N] float32 copy is never materialised. float64 input stays
    # float64 (tests compare with the float64 reference without rounding ties).
    per_q_head = obs_attn.sum(dim=1, dtype=torch.promote_types(obs_attn.dtype, torch.float32))  # [Hq, N]
    per_kv_head = per_q_head.view(num_kv_heads, hq // num_kv_heads, n).sum(dim=1)  # [Hkv, N]
    scores = per_kv_head[:, visual_mask]  # [Hkv, V]
    if pool > 1 and scores.shape[1] > 0:
        # A decode query that hits a patch tends to hit its neighbours too: smoothing makes the kept
        # set contiguous where the observation rows only touched part of an object.
        scores = F.avg_pool1d(scores[:, None], pool, stride=1, padding=pool // 2, count_include_pad=False)[:, 0]
    return scores


def cover_counts(sorted_scores: torch.Tensor, gamma: float, min_tokens: int) -> list[int]:
    """Per row, the number of leading (descending-sorted) scores needed to cover `gamma` of the row's mass.

    Args:
        sorted_scores: [H, V] scores sorted descending along V.
    Returns:
        H counts, each in [min(min_tokens, V), V]; gamma = 1 keeps all V (tokens with zero score
        included: "everything" must mean everything for the dense check).
    """
    h, n_vis = sorted_scores.shape
    if gamma >= 1.0 or n_vis == 0:
        return [n_vis] * h
    cum = sorted_scores.double().cumsum(dim=1)  # float64: the threshold test must not flip on rounding
    threshold = gamma * cum[:, -1:]
    # First index whose prefix mass reaches the threshold, +1 for a count.
    counts = torch.searchsorted(cum, threshold, side="left")[:, 0] + 1
    counts = counts.clamp(min=min(min_tokens, n_vis), max=n_vis)
    return counts.tolist()


def select_slim_tokens(
    obs_attn: torch.Tensor,
    visual_mask: torch.Tensor,
    params: SlimParams,
    *,
    num_kv_heads: int | None = None,
) -> list[torch.Tensor]:
    """Per-KV-head token indices to keep for decoding.

    Args:
        obs_attn: [Hq, T_obs, N] softmax attention of the last T_obs prompt tokens over the N
            prefix + question keys, any float dtype.
        visual_mask: [N] bool, True for visual tokens (only those are slimmed).
        params: selection knobs.
        num_kv_heads: Hkv; query heads u*g .. u*g+g-1 share KV head u. None means Hkv = Hq (no GQA);
            the engine must pass it for GQA models.
    Returns:
        Hkv tensors of int64 token indices, each sorted ascending, with every non-visual index and the
        head's selected visual indices. Lengths differ per head.
    """
    num_kv_heads = num_kv_heads or obs_attn.shape[0]
    scores = visual_scores(obs_attn, visual_mask, num_kv_heads, params.pool)  # [Hkv, V]
    visual_idx = visual_mask.nonzero()[:, 0]  # [V] visual token positions, ascending
    other_idx = (~visual_mask).nonzero()[:, 0]
    sorted_scores, order = scores.sort(dim=1, descending=True, stable=True)
    counts = cover_counts(sorted_scores, params.gamma_decode, params.min_tokens)
    keep = []
    for u, count in enumerate(counts):
        kept_visual = visual_idx[order[u, :count]]
        keep.append(torch.cat([other_idx, kept_visual]).sort().values)
    return keep


def keep_all(num_kv_heads: int, num_tokens: int, device: torch.device | str | None = None) -> list[torch.Tensor]:
    """The dense selection: every head keeps all tokens (dense decode, gamma_decode = 1 checks)."""
    every = torch.arange(num_tokens, device=device)
    return [every] * num_kv_heads


def alias_kv(k_buf: torch.Tensor, v_buf: torch.Tensor, n: int) -> PackedKV:
    """Every row of a cache layer as a PackedKV, without a copy (dense decoding reads the cache itself).

    Args:
        k_buf, v_buf: [Hkv, capacity, d] contiguous buffers whose first n rows per head are valid.
    Returns:
        PackedKV over the same memory: head u owns rows u * capacity ... u * capacity + n.
    The buffers must not be reallocated while the result is in use.
    """
    hkv, cap, d = k_buf.shape
    assert k_buf.shape == v_buf.shape and k_buf.is_contiguous() and v_buf.is_contiguous(), (
        f"alias_kv needs contiguous [Hkv, capacity, d] buffers, got {tuple(k_buf.shape)} {k_buf.stride()}")
    assert 0 <= n <= cap, f"{n} rows do not fit a capacity of {cap}"
    starts = torch.arange(hkv + 1, dtype=torch.int32) * cap
    return PackedKV(k=k_buf.view(hkv * cap, d), v=v_buf.view(hkv * cap, d), offsets=starts.to(k_buf.device),
                    lengths=(n,) * hkv, ends=(starts[:-1] + n).to(k_buf.device))


def pack_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    keep: list[torch.Tensor] | None,
    capacity: int | None = None,
    *,
    device: torch.device | str | None = None,
    out: PackedKV | None = None,
) -> PackedKV:
    """Gather each head's kept tokens into one packed buffer.

    Args:
        k, v: [Hkv, N, d], anywhere (host memory is fine: only kept rows are moved to `device`).
        keep: Hkv index tensors from `select_slim_tokens` (sorted); None keeps every token.
        capacity: rows to allocate (>= total kept); None = exactly the total. A fixed capacity lets a
            later question repack into the same buffers (`out=`), so a captured CUDA graph stays valid.
        device: where the packed buffers live; default k's device (ignored when `out` is given).
        out: a PackedKV whose buffers are overwritten in place (same Hkv, d, dtype; enough capacity).
    Returns:
        PackedKV with k, v [capacity, d] in k's dtype and offsets [Hkv + 1] int32.
    """
    assert k.dim() == 3 and k.shape == v.shape, f"k {tuple(k.shape)} and v {tuple(v.shape)} must be [Hkv, N, d]"
    hkv, n, d = k.shape
    if keep is None:
        keep = keep_all(hkv, n, k.device)
    assert len(keep) == hkv, f"{len(keep)} keep lists for {hkv} KV heads"
    lengths = tuple(int(idx.numel()) for idx in keep)
    total = sum(lengths)
    rows = torch.cat([idx.to(k.device, torch.long) + u * n for u, idx in enumerate(keep)])  # [total]
    assert total == 0 or (rows.min() >= 0 and rows.max() < hkv * n), "keep index out of range"
    offsets_host = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    if out is None:
        capacity = total if capacity is None else capacity
        device = k.device if device is None else torch.device(device)
        out = PackedKV(
            k=torch.zeros(capacity, d, dtype=k.dtype, device=device),
            v=torch.zeros(capacity, d, dtype=v.dtype, device=device),
            offsets=torch.zeros(hkv + 1, dtype=torch.int32, device=device),
            lengths=lengths,
        )
    assert out.num_kv_heads == hkv and out.k.shape[1] == d and out.k.dtype == k.dtype
    if total > out.capacity:
        raise ValueError(f"{total} kept tokens do not fit a packed capacity of {out.capacity}")
    # Gather where the full KV lives, then move only the kept rows (the point of slimming).
    out.k[:total].copy_(k.reshape(hkv * n, d).index_select(0, rows), non_blocking=True)
    out.v[:total].copy_(v.reshape(hkv * n, d).index_select(0, rows), non_blocking=True)
    out.offsets.copy_(offsets_host, non_blocking=True)
    return replace(out, lengths=lengths)
