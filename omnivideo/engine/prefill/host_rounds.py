"""The video prefix prefilled straight into host memory, a round at a time, one layer staged on the device.

When a video's KV does not fit the GPU, the ingest writes it to a `HostKVCache` instead of an
`OmniCache`. A prefill round runs layer-major (omnivideo/engine/prefill/prefix_prefill.py): for layer l,
every chunk of the round attends to the layer's stored rows plus the round's earlier chunks. So per
round and layer, the stored rows [:n0] are copied into a device buffer with room for the round's T new
tokens (one layer ahead, `LayerStager`), each chunk's K/V are appended there (what its attention reads,
exactly the views an OmniCache would give) and copied back to host memory. GPU memory holds two layers'
buffers instead of the whole KV; the bytes are the device path's.

    cache = HostKVCache(num_layers, hkv, d, dtype, capacity=n)
    for each round:
        staged = HostRoundCache(cache, round_tokens, device)
        prefill_round(engine, hidden, positions, staged, plan)
        staged.finish()                  # the new rows are in host memory; cache.length grows by T
"""
import torch

from omnivideo.engine.host_kv_cache import HostKVCache
from omnivideo.engine.prefill.layer_stager import LayerStager, copy_corner


class HostRoundCache:
    """The cache role of one prefill round over `host` (`update(k, v, layer_idx)`, as transformers calls it)."""

    def __init__(self, host: HostKVCache, round_tokens: int, device: torch.device):
        self.host, self.device, self.tokens = host, device, round_tokens
        self.n0 = host.length
        host.reserve(self.n0 + round_tokens)
        hkv, _, d = host.k[0].shape
        self.stager = LayerStager([host.layer_kv(i) for i in range(len(host.k))], [(hkv, self.n0 + round_tokens, d)] * 2,
                                  dtype=host.k[0].dtype, device=device)
        self.layer: int | None = None
        self.end = self.n0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """key/value_states [1, Hkv, t, D] of the next chunk of layer `layer_idx` -> its keys and values so far."""
        if layer_idx != self.layer:   # layer-major: every chunk of this layer follows, then the next layer
            self.k_buf, self.v_buf = self.stager.get(layer_idx)
            self.layer, self.end = layer_idx, self.n0
        a, b = self.end, self.end + key_states.shape[2]
        assert b <= self.n0 + self.tokens, f"round of {self.tokens} tokens overflowed ({b - self.n0})"
        self.k_buf[:, a:b].copy_(key_states[0])
        self.v_buf[:, a:b].copy_(value_states[0])
        # device -> pinned host without a sync: finish() waits before anyone reads these rows
        copy_corner(self.host.k[layer_idx][:, a:], key_states[0], non_blocking=True)
        copy_corner(self.host.v[layer_idx][:, a:], value_states[0], non_blocking=True)
        self.end = b
        return self.k_buf[None, :, :b], self.v_buf[None, :, :b]

    def finish(self) -> None:
        """Wait for the round's rows to land in host memory; the host cache now holds them."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        self.host.length = self.n0 + self.tokens
