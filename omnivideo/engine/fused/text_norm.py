"""The language model's RMSNorms as one kernel each (omnivideo/kernels/layers/rms_norm.py) instead of transformers' chain.

transformers' RMSNorm casts to fp32, squares, averages, takes rsqrt, multiplies, casts back and multiplies
by the weight: about seven kernels, run twice per decoder layer (input and post-attention norms) plus
once at the end. In a decode step, where every kernel is a few microseconds of launch inside the CUDA
graph, that is ~400 of the step's ~900 kernels for Qwen2.5-VL-7B; in a prefill it is seven passes over
the hidden states instead of one. `fuse_text_norms` replaces each norm's `forward` on the instance (no
modeling file forked) by `rms_norm`, which keeps transformers' rounding exactly (fp32 math, the
normalised value cast to the input dtype before the weight product; omnivideo/kernels/layers/rms_norm_reference.py). The
kernel switch picks the Triton kernel (CUDA) or the reference (the same numbers as transformers' own forward).

Our engine's models get it (`load_model`, and `set_text_attention(model, ATTN_NAME)` in the benchmarks);
`unfuse_text_norms` gives transformers' forward back (the benchmarks' transformers baseline).

    fuse_text_norms(model)     # -> norms fused now
    unfuse_text_norms(model)   # -> norms given back their class forward
"""
import torch
from torch import nn

from omnivideo.engine.fused.instance_forward import clear_forward, set_forward
from omnivideo.kernels import use_triton
from omnivideo.kernels.layers.rms_norm_reference import rms_norm_reference

_FUSED = "_omnivideo_rms_norm"   # instance attribute marking a fused norm


def _norms(model) -> list[nn.Module]:
    """The language model's RMSNorm modules (per layer input / post-attention, and the final one)."""
    inner = getattr(model, "model", model)
    lm = getattr(inner, "language_model", inner)
    return [m for m in lm.modules() if type(m).__name__.endswith("RMSNorm") and hasattr(m, "variance_epsilon")]


def _fused_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    """[..., C] -> [..., C] as transformers' RMSNorm.forward (fallback to it where the kernel does not apply)."""
    x = hidden_states
    if x.dtype != self.weight.dtype or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)) \
            or x.shape[-1] != self.weight.shape[0] or x.numel() == 0:
        return type(self).forward(self, x)
    flat = x.reshape(-1, x.shape[-1])
    if use_triton(x.device, x.dtype):
        from omnivideo.kernels.layers.rms_norm import rms_norm    # imported late: Triton is optional on a CPU

        out = rms_norm(flat, self.weight, self.variance_epsilon)
    else:
        out = rms_norm_reference(flat, self.weight, self.variance_epsilon)
    return out.view(x.shape)


def fuse_text_norms(model) -> int:
    """Route every language-model RMSNorm through `rms_norm` (idempotent); returns how many are fused now."""
    return set_forward(_norms(model), _fused_forward, _FUSED)


def unfuse_text_norms(model) -> int:
    """Give every fused norm its class forward back; returns how many were fused."""
    return clear_forward(_norms(model), _FUSED)
