"""Our attention function for the language model, plugged in through transformers' AttentionInterface.

The model's own attention modules project q/k/v, apply M-RoPE and append to our cache; this
function decides what is computed with them. Per-forward state (the `AttentionPlan`) arrives as the
`omni_plan` keyword that our engine passes to the language model; with no plan the dense path runs.
No mask function is registered on purpose: the engine always runs batch 1 without padding, so
causality is implied by the positions (queries are the last Tq of the Tk keys) and this function
applies it itself.

    register_attention()   # idempotent
    model = AutoModelForImageTextToText.from_pretrained(..., attn_implementation={"text_config": ATTN_NAME})
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

ATTN_NAME = "omnivideo"

# Bound the dense path's explicit causal mask (bool [rows, Tk]) to about this many elements, so a
# long chunk over a long past never materialises a huge mask at once.
_MASK_BUDGET = 1 << 26


@dataclass
class AttentionPlan:
    """What the engine wants from attention in one forward (batch 1).

    Attributes:
        sparse: a callable `(module, q, k, v, scale) -> out [B, Hq, Tq, D] | None` that may replace the
            dense computation for this forward (the sparse prefill path); None -> dense.
        observe: a callable `(module, q, k, v, scale) -> None` run before attention, e.g. to capture
            Q/K for benchmarks or the question's attention for KV slimming.
    """
    sparse: Callable | None = None
    observe: Callable | None = None


def dense_causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Exact causal attention where the queries are the last Tq of the Tk keys.

    Args:
        q: [B, Hq, Tq, D]; k, v: [B, Hkv, Tk, D] with Hq a multiple of Hkv (GQA, not expanded).
    Returns:
        [B, Hq, Tq, D].
    """
    tq, tk = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    if tq == 1:
        return F.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=gqa)
    if tq == tk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
    offset = tk - tq
    rows = max(1, _MASK_BUDGET // tk)
    outs = []
    keys = torch.arange(tk, device=q.device)
    for start in range(0, tq, rows):
        stop = min(tq, start + rows)
        # query i (absolute offset+i) sees keys 0..offset+i; keys past the block's last query are cut off
        hi = offset + stop
        allowed = keys[None, :hi] <= (offset + torch.arange(start, stop, device=q.device))[:, None]
        outs.append(F.scaled_dot_product_attention(q[:, :, start:stop], k[:, :, :hi], v[:, :, :hi],
                                                   attn_mask=allowed, scale=scale, enable_gqa=gqa))
    return torch.cat(outs, dim=2)


def omnivideo_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                        omni_plan: AttentionPlan | None = None, **kwargs):
    """AttentionInterface entry point.

    Args:
        query: [B, Hq, Tq, D]; key, value: [B, Hkv, Tk, D] as returned by the cache (GQA not expanded).
        attention_mask: ignored (None by construction: no mask function is registered, batch 1).
    Returns:
        ([B, Tq, Hq, D], None) as transformers expects.
    """
    assert query.shape[0] == 1, "the engine runs batch 1"
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    out = None
    if omni_plan is not None:
        if omni_plan.observe is not None:
            omni_plan.observe(module, query, key, value, scale)
        if omni_plan.sparse is not None:
            out = omni_plan.sparse(module, query, key, value, scale)
    if out is None:
        out = dense_causal_attention(query, key, value, scale)
    return out.transpose(1, 2).contiguous(), None


def register_attention() -> None:
    """Register `omnivideo_attention` under ATTN_NAME (safe to call more than once)."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, omnivideo_attention)
