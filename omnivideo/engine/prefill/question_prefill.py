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
from omnivideo.engine.host_kv_cache import HostKVCache
from omnivideo.engine.prefill.layer_stager import LayerStager, copy_corner
from omnivideo.engine.stack import decoder_stack, text_positions


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
    return engine.conversation_from_prefix(layers, prefix_ids, rope_delta, on_host=True)


def to_host(engine, conv):
    """Move a conversation's KV (e.g. right after `Engine.ingest`) to host memory; frees its device cache."""
    cache = HostKVCache.from_layers(conv.cache.iter_layers(), engine.num_layers, engine.loaded.dtype,
                                    reserve=conv.length + engine.config.reserve_tokens)
    return Conversation(cache=cache, rope_delta=conv.rope_delta, prefix_len=conv.prefix_len, ids=list(conv.ids),
                        pending=list(conv.pending), stats=dict(conv.stats))
