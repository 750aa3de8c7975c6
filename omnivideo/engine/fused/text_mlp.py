"""The language model's gated MLP at decode time: SiLU(gate) * up in one kernel on the fused gate|up output.

With `omnivideo.engine.fused.nf4_fusion`, a one-row `gate_proj(x)` and `up_proj(x)` are the two halves of one GEMV
output [1, 2I]: adjacent in memory. transformers' MLP then runs SiLU and the product as two more
kernels (2 x 28 per 7B decode step, ~90 µs of a ~4.3 ms step on an H100, docs/decode_engine.md).
`fuse_text_mlp` replaces each MLP's `forward` on the instance (no modeling file forked): when the two
halves are adjacent it runs `omnivideo.kernels.layers.silu_mul` over them (transformers' rounding: SiLU rounded to the
dtype, then the product), otherwise transformers' own expression. Prefill, the reference backend (a CPU,
unless the tests force the interpreter) and any activation other than SiLU take transformers' path unchanged.

    fuse_text_mlp(model)     # -> MLPs given the fused forward now
    unfuse_text_mlp(model)   # -> MLPs given their class forward back
"""
import torch
from torch import nn

from omnivideo.engine.fused.instance_forward import clear_forward, set_forward
from omnivideo.kernels import use_triton

_FUSED = "_omnivideo_text_mlp"


def _mlps(model) -> list[nn.Module]:
    inner = getattr(model, "model", model)
    lm = getattr(inner, "language_model", inner)
    return [m for m in lm.modules() if all(hasattr(m, a) for a in ("gate_proj", "up_proj", "down_proj", "act_fn"))
            and type(m.act_fn).__name__ in ("SiLU", "SiLUActivation")]


def _adjacent_halves(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor | None:
    """[1, 2I] view over gate and up when they are one row's two adjacent halves, else None."""
    i = gate.shape[-1]
    if gate.numel() != i or up.shape != gate.shape or up.dtype != gate.dtype or up.device != gate.device:
        return None
    if not (gate.is_contiguous() and up.is_contiguous()) or up.data_ptr() != gate.data_ptr() + i * gate.element_size():
        return None
    # one storage, not two allocations that merely touch (the CUDA caching allocator packs small blocks)
    if up.untyped_storage().data_ptr() != gate.untyped_storage().data_ptr():
        return None
    return gate.as_strided((1, 2 * i), (2 * i, 1))


def _fused_forward(self, x: torch.Tensor) -> torch.Tensor:
    gate, up = self.gate_proj(x), self.up_proj(x)
    kernel_runs = use_triton(gate.device, gate.dtype)
    gate_up = _adjacent_halves(gate, up) if kernel_runs else None
    if gate_up is None or torch.is_grad_enabled() and gate.requires_grad:
        return self.down_proj(self.act_fn(gate) * up)
    from omnivideo.kernels.layers.silu_mul import silu_mul  # imported late: Triton is optional on a CPU

    return self.down_proj(silu_mul(gate_up).view(gate.shape))


def fuse_text_mlp(model) -> int:
    """Give every SiLU-gated language-model MLP the fused forward (idempotent); returns how many now."""
    return set_forward(_mlps(model), _fused_forward, _FUSED)


def unfuse_text_mlp(model) -> int:
    return clear_forward(_mlps(model), _FUSED)
