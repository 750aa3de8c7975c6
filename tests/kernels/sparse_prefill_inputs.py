"""Small Q/K/V with local attention, sinks and per-head spread, for the sparse prefill kernel tests.

Pure random Q/K gives flat attention (every plan goes dense); these inputs make some (KV head,
query block) rows lazy and some active at test sizes (Nk ~ 300, blocks of 16).
"""
import torch

from omnivideo.kernels.sparse_prefill.reference import BlockLists


def local_qkv(hq: int, hkv: int, n: int, d: int, dtype: torch.dtype, device: str, seed: int = 0):
    """q [hq, n, d], k/v [hkv, n, d]: keys follow a slowly drifting feature (nearby tokens alike);
    query head h weights it by a head-specific sharpness (some heads flat); token 0-3 are sinks."""
    gen = torch.Generator().manual_seed(seed)
    drift = torch.randn(n, d, generator=gen).cumsum(0)
    drift = drift - torch.nn.functional.avg_pool1d(drift.T[None], 65, 1, 32, count_include_pad=False)[0].T
    feat = torch.nn.functional.normalize(drift, dim=-1)
    sharp = torch.linspace(0.3, 6.0, hq)[torch.randperm(hq, generator=gen)]
    k = feat[None] + 0.3 * torch.randn(hkv, n, d, generator=gen)
    k[:, :4] += 2.0 * feat[:1]
    q = sharp[:, None, None] * feat[None] + 0.3 * torch.randn(hq, n, d, generator=gen)
    q = q * d ** 0.5
    v = torch.randn(hkv, n, d, generator=gen)
    return tuple(t.to(device=device, dtype=dtype) for t in (q, k, v))


def random_lists(hkv: int, nq: int, nk: int, block_size: int, keep: float, device: str, seed: int = 0) -> BlockLists:
    """Random sorted causal lists that always hold the diagonal block (what the kernel requires)."""
    gen = torch.Generator().manual_seed(seed)
    mq, mk = -(-nq // block_size), -(-nk // block_size)
    bi = mk - mq + torch.arange(mq)
    c = torch.arange(mk)
    mask = (torch.rand(hkv, mq, mk, generator=gen) < keep) & (c <= bi[:, None]) | (c == bi[:, None])
    count = mask.sum(-1)
    idx = torch.where(mask, c, mk).sort(-1).values[..., :int(count.max())]
    idx = torch.where(idx == mk, -1, idx).to(torch.int32)
    density = count.sum().item() / (hkv * (bi + 1).sum().item())
    return BlockLists(idx.contiguous().to(device), count.to(torch.int32).to(device),
                      torch.zeros(mq, dtype=torch.int32, device=device),
                      torch.zeros(hkv, mq, dtype=torch.bool, device=device), density, False, block_size, density)
