"""The decoder-stack driver: the language model's layers called one by one with our cache and plan.

The engine runs the Hugging Face modules directly (embeddings, decoder layers, final norm, lm_head)
rather than the model's forward, so that each layer's attention gets our `omni_plan` and its K/V go to
whatever cache object the caller picks per layer (the conversation's cache, a staged host layer, the
decode step's slimmed KV). The model's own forward also builds a causal mask; our attention needs none
(batch 1, the queries are the last T keys), so calling the layers directly computes the same thing.

transformers renamed the layers' cache keyword (`past_key_values` up to 5.2x, `cache` from 5.25, the
old name deprecated): `CACHE_KWARG` is whichever the installed decoder layer takes.

    hidden = decoder_stack(engine.lm, engine.embed(ids), position_ids, lambda i: cache, plan)
"""
import inspect

import torch
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as _qwen2_5_vl

CACHE_KWARG = ("cache" if "cache" in inspect.signature(_qwen2_5_vl.Qwen2_5_VLDecoderLayer.forward).parameters
               else "past_key_values")


def run_layer(layer, hidden: torch.Tensor, cache, position_embeddings, plan) -> torch.Tensor:
    """One decoder layer over hidden [1, T, H] with its K/V appended to `cache`; returns [1, T, H]."""
    out = layer(hidden, attention_mask=None, position_ids=None, use_cache=True,
                position_embeddings=position_embeddings, omni_plan=plan, **{CACHE_KWARG: cache})
    return out[0] if isinstance(out, tuple) else out  # transformers 4.x layers return tuples


def decoder_stack(lm, hidden: torch.Tensor, position_ids: torch.Tensor, cache_for, plan) -> torch.Tensor:
    """Run the language model's decoder layers and final norm, as its own forward does.

    Args:
        lm: the language model (`model.model.language_model`).
        hidden: [1, T, H] input embeddings; position_ids: [3, 1, T] M-RoPE positions.
        cache_for: layer index -> the object whose `update(k, v, layer_idx)` the attention calls.
        plan: the AttentionPlan every layer's attention receives.
    Returns:
        [1, T, H] hidden states after the final norm.
    """
    position_embeddings = lm.rotary_emb(hidden, position_ids)
    for i, layer in enumerate(lm.layers):
        hidden = run_layer(layer, hidden, cache_for(i), position_embeddings, plan)
    return lm.norm(hidden)


def text_positions(start: int, count: int, rope_delta: int, device) -> torch.Tensor:
    """[3, 1, count] M-RoPE positions of `count` text tokens from index `start` after a video prefix."""
    pos = torch.arange(start, start + count, device=device) + rope_delta
    return pos.view(1, 1, count).expand(3, 1, count)
