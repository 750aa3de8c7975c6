"""The language model's rotary step as one kernel per layer (omnivideo/kernels/layers/text_rotary.py) on CUDA.

transformers' `apply_rotary_pos_emb` (`apply_multimodal_rotary_pos_emb` before 5.2x, which also
merges the three M-RoPE position axes in every layer) runs about ten small kernels per decoder layer;
in the 7B's decode step that is ~280 of the CUDA graph's kernels, a few microseconds each.

The attention modules call the function through their modeling module's globals, so the hook has two
parts, neither forking a modeling file:
- the module-level function is wrapped once by a dispatcher that calls the fused kernel only while a
  fused attention module is running (a context variable) and only for CUDA tensors; everything else
  (another model in the process, transformers' baseline in the benchmarks, CPU) gets the original;
- `fuse_text_rotary(model)` gives each text attention module an instance `forward` that sets the
  variable around the class forward.
The M-RoPE merge of the old signature is done once per forward (cached on the identity of the cos
tensor every layer receives) instead of once per layer. Numbers: fp32 math with one rounding
(omnivideo/kernels/layers/text_rotary_reference.py), within about a bf16 ulp of transformers' three roundings.

    fuse_text_rotary(model)     # -> attention modules fused now
    unfuse_text_rotary(model)   # -> class forward back
"""
import contextvars
import functools
import torch
from torch import nn
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as _hf

from omnivideo.engine.fused.instance_forward import clear_forward, set_forward
from omnivideo.kernels import use_triton

_ACTIVE = contextvars.ContextVar("omnivideo_text_rotary", default=False)
_FUSED = "_omnivideo_text_rotary"  # instance attribute marking a fused attention module
_WRAPPED = "_omnivideo_dispatch"   # attribute marking our dispatcher on the module function
_NAMES = ("apply_rotary_pos_emb", "apply_multimodal_rotary_pos_emb")
_merge_cache: list = [None]        # (cos, sin, merged cos, merged sin) of the last forward


def _merged(cos: torch.Tensor, sin: torch.Tensor, mrope_section) -> tuple[torch.Tensor, torch.Tensor]:
    """[3, B, S, D] per-axis tables -> [B, S, D]: section i of the head dim from axis i % 3 (as transformers)."""
    hit = _merge_cache[0]
    if hit is not None and hit[0] is cos and hit[1] is sin:
        return hit[2], hit[3]
    sections = list(mrope_section) * 2
    merge = [torch.cat([m[i % 3] for i, m in enumerate(t.split(sections, dim=-1))], dim=-1) for t in (cos, sin)]
    _merge_cache[0] = (cos, sin, merge[0], merge[1])
    return merge[0], merge[1]


def _dispatcher(original, multimodal: bool):
    @functools.wraps(original)
    def apply(q, k, cos, sin, *args, **kwargs):
        if not _ACTIVE.get() or torch.is_grad_enabled() or not use_triton(q.device, q.dtype):
            return original(q, k, cos, sin, *args, **kwargs)
        rest, options = list(args), dict(kwargs)
        mrope_section = (rest.pop(0) if rest else options.pop("mrope_section", None)) if multimodal else None
        unsqueeze_dim = rest[0] if rest else options.get("unsqueeze_dim", 1)
        tables_ok = cos.dim() == 4 and mrope_section is not None if multimodal else cos.dim() == 3
        if unsqueeze_dim != 1 or q.dim() != 4 or not tables_ok:  # a call shape we do not fuse
            return original(q, k, cos, sin, *args, **kwargs)
        if multimodal:
            cos, sin = _merged(cos, sin, mrope_section)
        from omnivideo.kernels.layers.text_rotary import text_rotary  # imported late: Triton is optional on a CPU

        return text_rotary(q, k, cos, sin)

    setattr(apply, _WRAPPED, True)
    return apply


def _install(modeling=None) -> None:
    """Wrap the rotary function(s) of `modeling` (a transformers modeling module; default Qwen2.5-VL's)."""
    modeling = modeling or _hf
    for name in _NAMES:
        fn = getattr(modeling, name, None)
        if fn is not None and not getattr(fn, _WRAPPED, False):
            setattr(modeling, name, _dispatcher(fn, multimodal=name == _NAMES[1]))


def _attentions(model) -> list[nn.Module]:
    inner = getattr(model, "model", model)
    lm = getattr(inner, "language_model", inner)
    return [layer.self_attn for layer in getattr(lm, "layers", [])]


def _flagged_forward(self, *args, **kwargs):
    token = _ACTIVE.set(True)
    try:
        return type(self).forward(self, *args, **kwargs)
    finally:
        _ACTIVE.reset(token)


def fuse_text_rotary(model, modeling=None) -> int:
    """Route the text attention modules' rotary step to the fused kernel (idempotent); returns how many now.
    `modeling`: the model's transformers modeling module (its family's; default Qwen2.5-VL's). Qwen3-VL's
    `apply_rotary_pos_emb` takes tables already interleaved over the three axes ([B, S, D]), the plain path."""
    _install(modeling)
    return set_forward(_attentions(model), _flagged_forward, _FUSED)


def unfuse_text_rotary(model) -> int:
    """Give every fused attention module its class forward back; returns how many were fused."""
    return clear_forward(_attentions(model), _FUSED)
