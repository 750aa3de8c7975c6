"""A conversation's KV in host memory: what lets a video whose KV does not fit the GPU still be asked about.

Per layer k, v [Hkv, capacity, D] in (pinned) host memory; prefills stream it to the device a layer at a
time (omnivideo/engine/prefill/question_prefill.py for questions, omnivideo/engine/prefill/host_rounds.py
for the video prefix itself).

    cache = HostKVCache(num_layers, num_kv_heads, head_dim, torch.bfloat16, capacity=n)
    k, v = cache.layer_kv(3)          # [Hkv, length, D] views
"""
from collections.abc import Iterable

import torch

from omnivideo.engine.prefill.layer_stager import copy_corner


class HostKVCache:
    """Full KV of a conversation in host memory: per layer k, v [Hkv, capacity, D]; rows [:length] valid.

    Pinned when CUDA is available (asynchronous copies both ways). Grows by 1.5x when a prefill
    needs more room; `truncate` keeps the buffers.
    """

    def __init__(self, num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype, capacity: int):
        self.pin = torch.cuda.is_available()
        self.k = [self._empty(num_kv_heads, capacity, head_dim, dtype=dtype) for _ in range(num_layers)]
        self.v = [self._empty(num_kv_heads, capacity, head_dim, dtype=dtype) for _ in range(num_layers)]
        self.length = 0

    def _empty(self, *shape, dtype) -> torch.Tensor:
        return torch.empty(*shape, dtype=dtype, pin_memory=self.pin)

    @classmethod
    def from_layers(cls, layers: Iterable[tuple[torch.Tensor, torch.Tensor]], num_layers: int,
                    dtype: torch.dtype, reserve: int = 0) -> "HostKVCache":
        """From per-layer ([Hkv, N, D], [Hkv, N, D]) tensors on any device (e.g. a stored prefix)."""
        cache = None
        count = 0
        for i, (k, v) in enumerate(layers):
            if cache is None:
                cache = cls(num_layers, k.shape[0], k.shape[2], dtype, max(reserve, k.shape[1]))
            n = k.shape[1]
            copy_corner(cache.k[i], k)
            copy_corner(cache.v[i], v)
            cache.length = n
            count += 1
        assert cache is not None and count == num_layers, f"expected {num_layers} layers, got {count}"
        return cache

    @property
    def capacity(self) -> int:
        return self.k[0].shape[1]

    def reserve(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        capacity = max(capacity, int(self.capacity * 1.5))
        for buffers in (self.k, self.v):
            for i, old in enumerate(buffers):
                new = self._empty(old.shape[0], capacity, old.shape[2], dtype=old.dtype)
                new[:, :self.length].copy_(old[:, :self.length])
                buffers[i] = new

    def get_seq_length(self) -> int:
        return self.length

    def truncate(self, length: int) -> None:
        assert 0 <= length <= self.length
        self.length = length

    def layer_kv(self, idx: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of layer `idx` for the first `length` tokens, as [Hkv, length, D] views."""
        n = self.length if length is None else length
        return self.k[idx][:, :n], self.v[idx][:, :n]

    def iter_layers(self, length: int | None = None):
        for i in range(len(self.k)):
            yield self.layer_kv(i, length)

    @property
    def nbytes(self) -> int:
        return sum(2 * t[:, :self.length].numel() * t.element_size() for t in self.k)


def is_host_cache(cache) -> bool:
    return isinstance(cache, HostKVCache)
