"""OmniSparse prefill through the attention hook: presets, text rows, per-layer dense fallback.

During the video prefill every layer's attention call goes through `SparsePrefill`: it estimates
block scores (mechanism 1: lazy/active query blocks; mechanism 2: one budget per query block set by
the flattest sparse KV head, heads flatter than that running dense rows of their own), builds
per-(KV head, query block) key-block lists and runs the block-sparse kernel. Query blocks holding text are dense. When the lists would keep more than
`dense_fallback` of the causal blocks, the layer returns None and the exact dense path runs. And
sparsity that saves nothing must cost nothing: after a layer falls back at Nk keys, its next chunks
run dense straight away, without estimating, until the prefix has doubled (2 Nk keys; a chunk that
does run sparse resets it). A layer that never finds sparsity thus estimates at most
1 + log2(N / min_keys) times, at 4K, 8K, 16K... keys, and the keys it estimates over sum to less than
2N: at most 4 / (number of chunks) of what estimating every chunk would cost (the bound
tests/engine/test_sparse_prefill_engine.py checks on the call counts). Doubling the keys rather than
the chunk count matters because a chunk's density falls as the prefix grows (the local window is a
smaller share of it): a fallback at 4K keys says little about a chunk at 8K. The stored KV is
complete either way (only the attention outputs of the skipped blocks are approximated).

The kernel switch (`omnivideo.kernels.use_triton`) picks the Triton kernels (CUDA) or their pure-PyTorch
references (the kernels' spec; a CPU).

    plan = AttentionPlan(sparse=SparsePrefill(PRESETS["balanced"], text_mask))
"""
from dataclasses import dataclass, field

import torch

from omnivideo.kernels import use_triton
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams

PRESETS: dict[str, SparseParams | None] = {
    "dense": None,
    "balanced": SparseParams(gamma=0.95),
    "fast": SparseParams(gamma=0.9),
}


@dataclass
class SparseStats:
    """Per layer: chosen density per chunk (1.0 where the dense fallback ran; a device tensor until read
    where the plan did not synchronise), fallbacks, chunks that skipped the estimate after one, lazy and
    flat shares; and the attention work of every chunk call: (kept share, causal blocks x KV heads)."""
    density: dict[int, list] = field(default_factory=dict)
    fallback: dict[int, int] = field(default_factory=dict)
    skipped: dict[int, int] = field(default_factory=dict)
    lazy: list = field(default_factory=list)   # per sparse chunk: share of (KV head, query block) rows lazy
    flat: list = field(default_factory=list)   # per sparse chunk: share of rows of heads run dense as flat
    work: list = field(default_factory=list)   # per chunk call, dense ones included: (kept share, causal blocks)

    def summary(self) -> dict:
        """`ask --json` "sparse": mean chosen density over every chunk call (skipped ones count as 1.0),
        `work_density` (the share of the prefix prefill's causal attention blocks actually computed: calls
        weighted by their size, dense calls below min_keys, skipped and fallen-back ones at 1.0), dense
        fallbacks, skipped estimates, and the lazy / flat shares of the chunks that ran sparse."""
        all_d = [float(d) for ds in self.density.values() for d in ds] + [1.0] * sum(self.skipped.values())
        lazy, flat = [float(x) for x in self.lazy], [float(x) for x in self.flat]
        blocks = sum(n for _, n in self.work)
        return {"mean_density": round(sum(all_d) / len(all_d), 4) if all_d else None,
                "work_density": round(sum(float(d) * n for d, n in self.work) / blocks, 4) if blocks else None,
                "dense_fallbacks": sum(self.fallback.values()), "skipped_estimates": sum(self.skipped.values()),
                "calls": len(all_d), "sparse_calls": len(lazy),
                "lazy_share": round(sum(lazy) / len(lazy), 4) if lazy else None,
                "flat_share": round(sum(flat) / len(flat), 4) if flat else None}


def _backend(device: torch.device, dtype: torch.dtype):
    if use_triton(device, dtype):
        from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention
        from omnivideo.kernels.sparse_prefill.estimate import estimate
        from omnivideo.kernels.sparse_prefill.sparse_plan import build_block_lists
        return estimate, build_block_lists, block_sparse_attention
    from omnivideo.kernels.sparse_prefill.reference import (block_lists_reference, block_sparse_attention_reference,
                                                  estimate_reference)
    return estimate_reference, block_lists_reference, block_sparse_attention_reference


class SparsePrefill:
    """`AttentionPlan.sparse` callable for the prefix prefill (batch 1).

    Args:
        params: the preset's SparseParams.
        text_mask: [N_prefix] bool, True at text tokens (their query blocks stay dense).
        min_keys: below this many keys the chunk runs dense (estimation would cost more than it saves).
        force_density: benchmarks only: keep this share of blocks whatever the estimate says.
        frame_tokens: visual tokens of one temporal frame group: the local window becomes 2x that
            (never less than the preset's), so "local" means the own and the previous frame group.
    """

    def __init__(self, params: SparseParams, text_mask: torch.Tensor, min_keys: int = 4096,
                 force_density: float | None = None, frame_tokens: int | None = None):
        self.params = params if frame_tokens is None else params.for_frames(frame_tokens)
        self.text_mask = text_mask
        self.min_keys = min_keys
        self.force_density = force_density
        self.stats = SparseStats()
        self._resume: dict[int, int] = {}   # layer -> keys a chunk needs before it estimates again (after a fallback)

    def _dense_rows(self, q_offset: int, nq: int) -> torch.Tensor:
        b = self.params.block_size
        rows = self.text_mask[q_offset:q_offset + nq]
        pad = (-nq) % b
        if pad:
            rows = torch.cat([rows, rows.new_zeros(pad)])
        return rows.view(-1, b).any(dim=1)

    def __call__(self, module, query, key, value, scale):
        """query [1, Hq, Tq, D]; key/value [1, Hkv, Tk, D] -> [1, Hq, Tq, D], or None for dense."""
        tq, tk = query.shape[2], key.shape[2]
        q_offset = tk - tq
        layer = getattr(module, "layer_idx", -1)
        b = self.params.block_size
        mq, qb0 = -(-tq // b), q_offset // b
        causal_blocks = key.shape[1] * (mq * qb0 + mq * (mq + 1) // 2)
        if tk < self.min_keys or tq < b or q_offset % b:
            self.stats.work.append((1.0, causal_blocks))
            return None
        if tk < self._resume.get(layer, 0):   # fell back at half these keys or more: dense, no estimate
            self.stats.skipped[layer] = self.stats.skipped.get(layer, 0) + 1
            self.stats.work.append((1.0, causal_blocks))
            return None
        estimate, build_lists, attend = _backend(query.device, query.dtype)
        q, k, v = query[0], key[0], value[0]
        est = estimate(q, k, q_offset=q_offset, params=self.params, scale=scale)
        kwargs = {"force_density": self.force_density} if self.force_density is not None else {}
        lists = build_lists(est, q_offset=q_offset, Nk=tk, params=self.params,
                            force_dense_rows=self._dense_rows(q_offset, tq), **kwargs)
        self.stats.density.setdefault(layer, []).append(lists.kept_share)   # no sync here
        self.stats.work.append((lists.kept_share, causal_blocks))
        if lists.dense:
            self.stats.fallback[layer] = self.stats.fallback.get(layer, 0) + 1
            self._resume[layer] = 2 * tk
            return None
        self._resume.pop(layer, None)
        self.stats.lazy.append(lists.lazy.float().mean())   # device scalars: read at summary time, no sync
        self.stats.flat.append(lists.flat.float().mean())
        out, _ = attend(q, k, v, lists, q_offset=q_offset, scale=scale)
        return out.unsqueeze(0)
