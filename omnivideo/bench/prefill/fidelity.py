"""Fidelity of the sparse prefill against dense attention: recall of kept keys and output error.

    lists = build_block_lists(estimate(q, k, ...), ...)
    recall = key_recall(q, k, lists, q_offset=0, scale=s, rows=256, seed=0)    # [Hq, rows]
    err = output_error(out_sparse, out_dense)

Recall of a head at a query row is the share of its *dense* softmax mass that falls on the keys the
sparse path kept (method.md, "How fidelity is measured"). Rows are sampled uniformly without
replacement (the same rows for every head) so that 32K-128K-token chunks stay cheap: one [rows, Nk]
float32 probability matrix per head at a time.
"""
from collections.abc import Iterator

import torch

from omnivideo.kernels.sparse_prefill.reference import block_mask_reference


def sample_rows(Nq: int, rows: int, seed: int, device) -> torch.Tensor:
    """[min(rows, Nq)] sorted distinct query rows."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(Nq, generator=gen)[:rows].sort().values.to(device)


def _dense_rows(q: torch.Tensor, k: torch.Tensor, t: torch.Tensor, q_offset: int,
                scale: float) -> Iterator[tuple[int, torch.Tensor]]:
    """(query head h, dense causal softmax [rows, Nk] float32 of rows t of head h), head by head."""
    Hq, Hkv, Nk = q.shape[0], k.shape[0], k.shape[1]
    causal = torch.arange(Nk, device=q.device)[None, :] <= (q_offset + t)[:, None]
    for h in range(Hq):
        s = (q[h, t].float() @ k[h // (Hq // Hkv)].float().T) * scale
        yield h, torch.softmax(s.masked_fill(~causal, float("-inf")), dim=-1)


@torch.no_grad()
def key_recall(q: torch.Tensor, k: torch.Tensor, lists, *, q_offset: int, scale: float, rows: int,
               seed: int) -> torch.Tensor:
    """Dense softmax mass on kept keys, per query head and sampled row.

    q [Hq, Nq, d], k [Hkv, Nk, d], lists: `BlockLists` of this chunk. Returns [Hq, rows] float32."""
    Hq, Nq, Nk, B = q.shape[0], q.shape[1], k.shape[1], lists.block_size
    t = sample_rows(Nq, rows, seed, q.device)
    kept_blocks = block_mask_reference(lists, -(-Nk // B))[:, t // B]          # [Hkv, rows, Mk]
    key_block = torch.arange(Nk, device=q.device) // B
    g = Hq // k.shape[0]
    out = torch.empty(Hq, t.numel(), device=q.device)
    for h, p in _dense_rows(q, k, t, q_offset, scale):
        out[h] = (p * kept_blocks[h // g][:, key_block]).sum(-1)
    return out


@torch.no_grad()
def oracle_density(q: torch.Tensor, k: torch.Tensor, *, q_offset: int, scale: float, block_size: int,
                   rows: int, seed: int, recall: float = 0.95) -> torch.Tensor:
    """What any block-sparse method needs here: per query head and sampled row, the fewest key
    blocks (chosen knowing the dense attention) that hold `recall` of the row's mass, as a share of
    its causal blocks. q [Hq, Nq, d], k [Hkv, Nk, d]. Returns [Hq, rows] float32."""
    Nq, Nk, B = q.shape[1], k.shape[1], block_size
    t = sample_rows(Nq, rows, seed, q.device)
    key_block = torch.arange(Nk, device=q.device) // B
    n_causal = ((q_offset + t) // B + 1).float()
    out = torch.empty(q.shape[0], t.numel(), device=q.device)
    for h, p in _dense_rows(q, k, t, q_offset, scale):
        per_block = torch.zeros(t.numel(), -(-Nk // B), device=q.device).index_add_(1, key_block, p)
        cum = per_block.sort(dim=-1, descending=True).values.cumsum(-1)
        out[h] = ((cum < recall).sum(-1) + 1).float().minimum(n_causal) / n_causal
    return out


def output_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| over all elements, in float64."""
    a, e = actual.double(), expected.double()
    return ((a - e).norm() / e.norm().clamp_min(1e-30)).item()


def recall_summary(recall: torch.Tensor) -> dict:
    """Mean, 5th percentile and minimum of a recall tensor (any shape)."""
    flat = recall.flatten().double()
    return {"recall_mean": flat.mean().item(), "recall_p5": torch.quantile(flat, 0.05).item(),
            "recall_min": flat.min().item()}
