"""The decode-time KV of one question: per layer a packed, per-head slimmed KV plus a `DecodeTail`.

`SlimKV` plays two roles in a decode forward, so the Hugging Face decoder layers run unchanged:
- the cache: the attention module calls `update(k, v, layer_idx)`, which appends the new token's
  K/V to that layer's tail (on the device, no host sync: CUDA-graph safe);
- the attention: `attention(module, q, k, v, scale)` is the `AttentionPlan.sparse` callable; it runs
  `decode_attention` of the one new query over the layer's packed rows followed by its tail.
Layers whose packed KV was placed in host memory (over the GPU budget) are staged to the device one
layer ahead by a cyclic `LayerStager`; a step with such layers is not graph-capturable.

    slim = SlimKV(packed_by_layer, offloaded={27}, tail_capacity=256, device=dev, dtype=torch.bfloat16)
    plan = AttentionPlan(sparse=slim.attention)
    hidden = layer(hidden, past_key_values=slim, omni_plan=plan, ...)
"""
from dataclasses import replace

import torch

from omnivideo.engine.prefill.layer_stager import LayerStager
from omnivideo.kernels import use_triton
from omnivideo.kernels.decode.decode_attention import DecodeTail
from omnivideo.kernels.decode.kv_slimming import PackedKV


def decode_backend(device: torch.device, dtype: torch.dtype):
    """`decode_attention(q, packed, tail, *, scale)`: the Triton kernel or its pure-PyTorch reference,
    as the kernel switch (`omnivideo.kernels.use_triton`) decides."""
    if use_triton(device, dtype):
        from omnivideo.kernels.decode.decode_attention import decode_attention
        return decode_attention
    from omnivideo.kernels.decode.reference import decode_attention_reference
    return decode_attention_reference


class SlimKV:
    """Per-layer packed KV + tails of one question.

    Args:
        packed: PackedKV per layer index 0..L-1: k, v [capacity, d] (head u owns rows
            offsets[u]:offsets[u+1]); on `device`, or in host memory for the layers in `offloaded`.
        offloaded: layers whose packed KV stays in host memory and is staged per step.
        tail_capacity: generated tokens the tails can hold (max_new_tokens).
    """

    def __init__(self, packed: list[PackedKV], *, offloaded: set[int], tail_capacity: int,
                 device: torch.device, dtype: torch.dtype):
        assert packed and tail_capacity >= 1
        self.device = device
        self.packed = list(packed)
        self.offloaded = sorted(offloaded)
        hkv, d = packed[0].num_kv_heads, packed[0].k.shape[1]
        self.num_kv_heads, self.head_dim = hkv, d
        self.tails = [DecodeTail(hkv, tail_capacity, d, dtype=dtype, device=device) for _ in packed]
        self.decode_fn = decode_backend(device, dtype)
        self._stage_index = {layer: i for i, layer in enumerate(self.offloaded)}
        self._device_offsets = {layer: packed[layer].offsets.to(device) for layer in self.offloaded}
        self.stager = None
        if self.offloaded:
            rows = max(max(packed[layer].total for layer in self.offloaded), 1)
            self.stager = LayerStager([(packed[layer].k[:packed[layer].total], packed[layer].v[:packed[layer].total])
                                       for layer in self.offloaded], [(rows, d), (rows, d)],
                                      dtype=dtype, device=device, cyclic=True)

    # -- cache role ---------------------------------------------------------------------------------
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Append the step's K/V ([1, Hkv, 1, d]) to the layer's tail; returns them unchanged (unused:
        `attention` reads the packed rows and the tail)."""
        self.tails[layer_idx].append(key_states[0], value_states[0])
        return key_states, value_states

    def reset_tails(self) -> None:
        for tail in self.tails:
            tail.reset()

    # -- attention role -----------------------------------------------------------------------------
    def layer_packed(self, layer: int) -> PackedKV:
        """The layer's PackedKV on the device (staged from host memory for offloaded layers)."""
        packed = self.packed[layer]
        if layer not in self._stage_index:
            return packed
        k_buf, v_buf = self.stager.get(self._stage_index[layer])
        return replace(packed, k=k_buf, v=v_buf, offsets=self._device_offsets[layer])

    def attention(self, module, query: torch.Tensor, key, value, scale: float) -> torch.Tensor:
        """query [1, Hq, 1, d] -> [1, Hq, 1, d]: the new token over the packed rows + the tail."""
        assert query.shape[0] == 1 and query.shape[2] == 1, "SlimKV serves one decode token at a time"
        layer = module.layer_idx
        hq, d = query.shape[1], query.shape[3]
        out = self.decode_fn(query[0, :, 0], self.layer_packed(layer), self.tails[layer], scale=scale)
        return out.view(1, hq, 1, d)

    # -- accounting ---------------------------------------------------------------------------------
    @property
    def graph_safe(self) -> bool:
        """No host staging inside a step (a CUDA graph cannot replay the per-step host copies' waits)."""
        return not self.offloaded

    def packed_bytes(self, on_device: bool | None = None) -> int:
        """Bytes of the packed KV (K and V), all layers or only device / host ones."""
        total = 0
        for layer, p in enumerate(self.packed):
            if on_device is None or on_device == (layer not in self._stage_index):
                total += 2 * p.total * p.k.shape[1] * p.k.element_size()
        return total

    def device_bytes(self) -> int:
        """GPU bytes this object holds for decoding: device-placed packed rows (not rows read from the
        cache in place), tails, staging buffers."""
        tails = sum(2 * t.k.numel() * t.k.element_size() for t in self.tails)
        staging = self.stager.nbytes if self.stager is not None else 0
        packed = sum(2 * p.k.numel() * p.k.element_size() for layer, p in enumerate(self.packed)
                     if layer not in self._stage_index and not p.aliased)  # aliased: the cache's own memory
        return packed + tails + staging
