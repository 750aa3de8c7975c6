"""Our KV cache: a transformers `Cache` whose layers write into preallocated buffers.

Dynamic caches grow by concatenation, which copies the whole past at every chunk of a long
prefill; these layers reserve capacity up front (`OmniCache.reserve`) and grow geometrically
only when a reservation was too small. The cache also knows which positions hold the stored
video prefix, so it can be saved, restored and truncated back to it between questions.

    cache = OmniCache(num_layers=28)
    cache.reserve(prefix_len + 512)
    model.model.language_model(inputs_embeds=..., past_key_values=cache, use_cache=True)
"""
from collections.abc import Iterable, Iterator

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class OmniLayer(CacheLayerMixin):
    """One layer's K/V in a buffer [B, Hkv, capacity, D]; `keys`/`values` are views of the filled part."""
    is_compileable = False
    is_sliding = False

    def __init__(self):
        super().__init__()
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None
        self._reserved = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self._allocate(key_states, value_states, max(self._reserved, key_states.shape[-2]))
        self.is_initialized = True

    def _allocate(self, key_like: torch.Tensor, value_like: torch.Tensor, capacity: int) -> None:
        b, h, _, d = key_like.shape
        new_k = key_like.new_empty(b, h, capacity, d)
        new_v = value_like.new_empty(b, h, capacity, value_like.shape[-1])
        if self._k is not None and self.length:
            new_k[:, :, :self.length] = self._k[:, :, :self.length]
            new_v[:, :, :self.length] = self._v[:, :, :self.length]
        self._k, self._v = new_k, new_v
        self._sync_views()

    def _sync_views(self) -> None:
        self.keys = self._k[:, :, :self.length]
        self.values = self._v[:, :, :self.length]

    def reserve(self, capacity: int) -> None:
        """Make room for `capacity` tokens in total (takes effect now, or at the first update)."""
        self._reserved = max(self._reserved, capacity)
        if self._k is not None and self._k.shape[2] < capacity:
            self._allocate(self._k, self._v, capacity)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append [B, Hkv, T, D] states; return the full [B, Hkv, length, D] views."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        need = self.length + n
        if need > self._k.shape[2]:
            self._allocate(self._k, self._v, max(need, int(self._k.shape[2] * 1.5) + 64))
        self._k[:, :, self.length:need] = key_states
        self._v[:, :, self.length:need] = value_states
        self.length = need
        self._sync_views()
        return self.keys, self.values

    def truncate(self, length: int) -> None:
        """Forget everything after the first `length` tokens (the buffer is kept)."""
        assert 0 <= length <= self.length
        self.length = length
        if self._k is not None:
            self._sync_views()

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.truncate(0)


class OmniCache(Cache):
    """Cache of `num_layers` OmniLayers (batch 1) with prefix save/restore helpers."""

    def __init__(self, num_layers: int):
        super().__init__(layers=[OmniLayer() for _ in range(num_layers)])

    def reserve(self, capacity: int) -> None:
        for layer in self.layers:
            layer.reserve(capacity)

    def truncate(self, length: int) -> None:
        for layer in self.layers:
            layer.truncate(length)

    def layer_kv(self, idx: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of layer `idx` for the first `length` tokens, as [Hkv, length, D] views."""
        layer = self.layers[idx]
        n = layer.length if length is None else length
        return layer.keys[0, :, :n], layer.values[0, :, :n]

    def iter_layers(self, length: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(len(self.layers)):
            yield self.layer_kv(i, length)

    @classmethod
    def from_layers(cls, layers: Iterable[tuple[torch.Tensor, torch.Tensor]], num_layers: int,
                    device: torch.device, dtype: torch.dtype, reserve: int = 0) -> "OmniCache":
        """Rebuild a cache from per-layer ([Hkv, N, D], [Hkv, N, D]) tensors (e.g. a stored prefix)."""
        cache = cls(num_layers)
        count = 0
        for i, (k, v) in enumerate(layers):
            layer = cache.layers[i]
            layer.reserve(max(reserve, k.shape[1]))
            layer.update(k.to(device=device, dtype=dtype, non_blocking=True)[None],
                         v.to(device=device, dtype=dtype, non_blocking=True)[None])
            count += 1
        assert count == num_layers, f"expected {num_layers} layers, got {count}"
        return cache
