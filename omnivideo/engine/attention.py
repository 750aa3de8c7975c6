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
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from omnivideo.errors import is_out_of_memory

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


# -- dense attention of a chunk with a past ------------------------------------------------------
# A prefill chunk's queries are the last Tq of Tk keys: causality is aligned to the lower right.
# SDPA's `is_causal` is aligned to the upper left, and an explicit mask makes SDPA leave its flash
# and cuDNN kernels for a slower one. On CUDA the chunk is split instead: the queries against the
# past keys (no mask at all) and against their own keys (Tq == Tk, `is_causal`), each with its
# log-sum-exp, merged exactly. Backends, tried in this order on CUDA, each checked once against the
# masked definition before it is used:
#   split-cudnn: both parts through cuDNN (GQA native, the fastest SDPA kernel on Hopper);
#   lower-right: torch.nn.attention.bias.causal_lower_right (FlashAttention-2 in one call);
#   mask:        SDPA with a bounded explicit boolean mask (the definition; the CPU path).
# (A split through the private FlashAttention-2 op measured no faster than lower-right on the H100:
# 24.4 vs 24.8 ms per layer at 32K, docs/benchmarks/prefill/e2e.md, so the public API covers it.)
OFFSET_BACKENDS = ("split-cudnn", "lower-right", "mask")
_override: str | None = None
_chosen: dict[tuple, str] = {}
LOG = logging.getLogger(__name__)


def set_offset_backend(name: str | None) -> None:
    """Force the backend of chunks with a past (benchmarks, tests); None restores the automatic choice."""
    global _override
    assert name is None or name in OFFSET_BACKENDS + ("split-math",), name
    _override = name


def chosen_offset_backends() -> dict[str, str]:
    """{layout: backend} chosen so far (for logs and benchmark reports)."""
    return {"/".join(map(str, key)): name for key, name in _chosen.items()}


def _lse_cudnn(q, k, v, scale, causal):
    out, lse = torch.ops.aten._scaled_dot_product_cudnn_attention(q, k, v, None, True, 0.0, causal, False,
                                                                  scale=scale)[:2]
    return out, lse


def _lse_math(q, k, v, scale, causal):
    """Explicit fp32 scores (tests and CPU only: materialises [B, Hq, Tq, Tk])."""
    g = q.shape[1] // k.shape[1]
    s = (q.float() @ k.repeat_interleave(g, 1).float().transpose(-1, -2)) * scale
    if causal:
        s = s.masked_fill(torch.ones(s.shape[-2:], dtype=torch.bool, device=s.device).triu(1), float("-inf"))
    return (torch.softmax(s, -1) @ v.repeat_interleave(g, 1).float()).to(q.dtype), torch.logsumexp(s, -1)


_LSE = {"split-cudnn": _lse_cudnn, "split-math": _lse_math}


def _split_attention(q, k, v, scale, lse_fn):
    """Past part (no mask) + diagonal part (causal), merged by their log-sum-exps. Shapes as below."""
    tq, offset = q.shape[2], k.shape[2] - q.shape[2]
    o_past, l_past = lse_fn(q, k[:, :, :offset], v[:, :, :offset], scale, False)
    o_diag, l_diag = lse_fn(q, k[:, :, offset:], v[:, :, offset:], scale, True)
    # kernels may return [B, H, Tq, 1] or rows rounded up: keep [B, H, Tq]
    l_past = l_past.reshape(*l_past.shape[:2], -1)[:, :, :tq].float()
    l_diag = l_diag.reshape(*l_diag.shape[:2], -1)[:, :, :tq].float()
    w_past = torch.sigmoid(l_past - l_diag).unsqueeze(-1)  # e^l_past / (e^l_past + e^l_diag)
    return torch.lerp(o_diag.float(), o_past.float(), w_past).to(q.dtype)


def _masked_attention(q, k, v, scale, gqa):
    tq, tk = q.shape[2], k.shape[2]
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


def _lower_right(q, k, v, scale, gqa):
    from torch.nn.attention.bias import causal_lower_right

    bias = causal_lower_right(q.shape[2], k.shape[2])
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale, enable_gqa=gqa)


def _offset_attention(name, q, k, v, scale):
    gqa = q.shape[1] != k.shape[1]
    if name == "mask":
        return _masked_attention(q, k, v, scale, gqa)
    if name == "lower-right":
        return _lower_right(q, k, v, scale, gqa)
    return _split_attention(q, k, v, scale, _LSE[name])


def _passes_check(name: str, like: torch.Tensor, hq: int, hkv: int) -> bool:
    """Does `name` compute the masked definition on this device/dtype/GQA layout (small problem)?"""
    gen = torch.Generator(device=like.device).manual_seed(0)
    d = like.shape[-1]
    # the model's layouts: q token-major ([B, T, H, D] transposed), k/v views of a longer cache buffer
    q = torch.randn(1, 192, hq, d, device=like.device, dtype=like.dtype, generator=gen).transpose(1, 2)
    k, v = (torch.randn(1, hkv, 512, d, device=like.device, dtype=like.dtype, generator=gen)[:, :, :448]
            for _ in "kv")
    try:
        out = _offset_attention(name, q, k, v, d ** -0.5).float()
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as e:
        if is_out_of_memory(e):  # not a verdict on the backend: choosing a slower one for good would hide it
            raise
        LOG.info("dense attention backend %s unavailable: %s", name, str(e).splitlines()[0][:200])
        return False
    ref = _masked_attention(q.float(), k.float(), v.float(), d ** -0.5, hq != hkv)
    err = ((out - ref).norm() / ref.norm()).item()
    if not err < 2e-2:
        LOG.warning("dense attention backend %s disagrees with the definition (rel err %.3g)", name, err)
    return err < 2e-2


def offset_backend(q: torch.Tensor, k: torch.Tensor) -> str:
    """The backend for a chunk with a past on q's device/dtype/head layout (checked once, then cached)."""
    if _override is not None:
        return _override
    if q.device.type != "cuda":
        return "mask"  # exact and fast enough for the small models a CPU runs
    key = (q.device, q.dtype, q.shape[1], k.shape[1], q.shape[-1])
    if key not in _chosen:
        _choose(key, OFFSET_BACKENDS, q, k)
    return _chosen[key]


def dense_backend(device: torch.device, dtype: torch.dtype, num_q_heads: int, num_kv_heads: int,
                  head_dim: int) -> str:
    """The backend chunks with a past will run for this layout (chosen now if not yet): part of the cache
    key, since the backends round differently."""
    q = torch.empty(1, num_q_heads, 1, head_dim, device=device, dtype=dtype)
    return offset_backend(q, torch.empty(1, num_kv_heads, 1, head_dim, device=device, dtype=dtype))


def _choose(key: tuple, candidates: tuple[str, ...], q: torch.Tensor, k: torch.Tensor) -> None:
    _chosen[key] = next(n for n in candidates if n == "mask" or _passes_check(n, q, q.shape[1], k.shape[1]))
    LOG.info("dense attention for chunks with a past: %s (%s)", _chosen[key], key)


def _offset_dispatch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Run the backend checked for this layout. A failure on a real call is raised, not retried with
    another backend: it would also turn a CUDA out-of-memory into a slower, hungrier retry."""
    return _offset_attention(offset_backend(q, k), q, k, v, scale)


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
    return _offset_dispatch(q, k, v, scale)


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
