"""Training-time vision attention: a layer's equal-length windows in one batched SDPA call.

transformers' Qwen2.5-VL tower, without flash-attn, loops in Python over the `cu_seqlens` segments
(one SDPA call per 112-px window: 16 per 448-px frame pair, so 4096 calls per windowed layer at 64K
tokens; docs/training-probe.md measured the tower at ~94% of a training step). Every window of our
square frames holds the same number of patches (64 at 448 and 224 px), as does every frame pair of the
full-attention blocks, so the segments stack into one [segments, heads, length, dim] batch: the same
attention, one kernel, autograd included. Installed per module instance (no class is patched, nothing
is saved differently); any call with unequal segments falls back to transformers' own forward.

    install_batched_vision_attention(model)    # returns the number of attention modules switched
"""
from types import MethodType

import torch
import torch.nn.functional as F


def _batched_forward(self, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor, position_embeddings=None,
                     **kwargs) -> torch.Tensor:
    """hidden_states [N, C]; cu_seqlens [S + 1] segment bounds; position_embeddings (cos, sin) [N, D]."""
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    length = int(lengths[0])
    if position_embeddings is None or length == 0 or not bool((lengths == length).all()):
        return self._omni_original_forward(hidden_states, cu_seqlens, position_embeddings=position_embeddings,
                                           **kwargs)
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision

    n = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(n, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb_vision(q, k, cos, sin)
    segments = n // length
    q, k, v = (x.reshape(segments, length, self.num_heads, -1).transpose(1, 2) for x in (q, k, v))
    scale = getattr(self, "scaling", q.shape[-1] ** -0.5)
    out = F.scaled_dot_product_attention(q, k, v, scale=scale)                 # [S, H, L, D]
    return self.proj(out.transpose(1, 2).reshape(n, -1))


def install_batched_vision_attention(model) -> int:
    """Switch every vision attention module of `model` to the batched forward (idempotent)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    switched = 0
    for module in model.modules():
        if isinstance(module, Qwen2_5_VLVisionAttention) and not hasattr(module, "_omni_original_forward"):
            module._omni_original_forward = module.forward
            module.forward = MethodType(_batched_forward, module)
            switched += 1
    return switched


def remove_batched_vision_attention(model) -> None:
    """Undo `install_batched_vision_attention`."""
    for module in model.modules():
        if hasattr(module, "_omni_original_forward"):
            module.forward = module._omni_original_forward
            del module._omni_original_forward
