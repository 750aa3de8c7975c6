"""Question prefill over a conversation whose full KV lives in host memory, streamed layer by layer.

A long video's KV need not fit the GPU: 256K tokens of Qwen2.5-VL-7B KV are 14 GiB in bf16. The
conversation then keeps its KV in a `HostKVCache` (pinned host memory) and a prefill of new tokens
(the question; also a dense decode step) runs the decoder layers one at a time: layer l's stored
K/V is copied into a device buffer with room for the new tokens (while layer l-1 computes, see
`LayerStager`), the new tokens' K/V are written into that buffer and back to host memory, and the
attention (dense and exact, plus the plan's `observe` hook: mechanism 3 selects and packs there)
reads the buffer. GPU memory holds two layers of KV instead of all of them.

    conv = host_conversation(engine, stored_layers, prefix_ids, rope_delta)   # or to_host(engine, conv)
    logits = prefill_streamed(engine, conv, question_ids, plan)             # Engine.forward_text does this
"""
from collections.abc import Iterable

import torch

from omnivideo.engine.conversation import Conversation
from omnivideo.engine.prefill.layer_stager import LayerStager, copy_corner
from omnivideo.engine.stack import decoder_stack, text_positions


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


class _StagedLayer:
    """The cache role for one layer of a streamed prefill: stored rows [:n0] are staged in k_buf/v_buf
    ([Hkv, n0 + T, D] on the device); `update` writes the T new rows there and back to host memory."""

    def __init__(self, cache: HostKVCache, layer: int, k_buf: torch.Tensor, v_buf: torch.Tensor, n0: int):
        self.cache, self.layer, self.k_buf, self.v_buf, self.n0 = cache, layer, k_buf, v_buf, n0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        assert layer_idx == self.layer
        n1 = self.n0 + key_states.shape[2]
        self.k_buf[:, self.n0:n1].copy_(key_states[0])
        self.v_buf[:, self.n0:n1].copy_(value_states[0])
        # non_blocking device -> pinned host: prefill_streamed synchronises before anyone reads it
        copy_corner(self.cache.k[self.layer][:, self.n0:], key_states[0], non_blocking=True)
        copy_corner(self.cache.v[self.layer][:, self.n0:], value_states[0], non_blocking=True)
        return self.k_buf[None, :, :n1], self.v_buf[None, :, :n1]


def prefill_streamed(engine, conv, new_ids: list[int], plan) -> torch.Tensor:
    """Feed `new_ids` after the conversation's end, streaming its host KV; returns the last logits [V].

    Exact: every new token attends densely to all stored keys and to the new tokens before it.
    """
    cache: HostKVCache = conv.cache
    n0, t = cache.length, len(new_ids)
    device = engine.device
    cache.reserve(n0 + t)
    ids = torch.tensor([new_ids], device=device)
    position_ids = text_positions(n0, t, conv.rope_delta, device)
    hkv, _, d = cache.k[0].shape
    stager = LayerStager([(cache.k[i][:, :n0], cache.v[i][:, :n0]) for i in range(len(cache.k))],
                         [(hkv, n0 + t, d)] * 2, dtype=cache.k[0].dtype, device=device)

    def staged(i: int) -> _StagedLayer:
        k_buf, v_buf = stager.get(i)
        return _StagedLayer(cache, i, k_buf, v_buf, n0)

    hidden = decoder_stack(engine.lm, engine.embed(ids), position_ids, staged, plan)
    logits = engine.lm_head(hidden[:, -1])[0]
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()  # the new rows' device -> host copies landed
    cache.length = n0 + t
    conv.ids.extend(new_ids)
    return logits


def host_conversation(engine, layers: Iterable[tuple[torch.Tensor, torch.Tensor]], prefix_ids: list[int],
                      rope_delta: int):
    """Like `Engine.conversation_from_prefix`, with the KV kept in host memory (streamed per question)."""
    cache = HostKVCache.from_layers(layers, engine.num_layers, engine.loaded.dtype,
                                    reserve=len(prefix_ids) + engine.config.reserve_tokens)
    return Conversation(cache=cache, rope_delta=rope_delta, prefix_len=len(prefix_ids), ids=list(prefix_ids))


def to_host(engine, conv):
    """Move a conversation's KV (e.g. right after `Engine.ingest`) to host memory; frees its device cache."""
    cache = HostKVCache.from_layers(conv.cache.iter_layers(), engine.num_layers, engine.loaded.dtype,
                                    reserve=conv.length + engine.config.reserve_tokens)
    return Conversation(cache=cache, rope_delta=conv.rope_delta, prefix_len=conv.prefix_len, ids=list(conv.ids),
                        pending=list(conv.pending), stats=dict(conv.stats))
