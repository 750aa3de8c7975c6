"""The vision tower's MLP widths padded to a multiple of 128 at load: same outputs, fast GEMMs.

Qwen2.5-VL's vision MLP is 1280 -> 3420 -> 1280. 3420 is not a multiple of 8, so cuBLAS cannot use
16-byte aligned operands for the gate/up outputs and the down projection's input, and picks slow
small-alignment kernels (the H100 profile in docs/vision.md: most of the tower's GEMM time). Padding
the width with zero rows (gate/up weights and biases) and zero columns (down weights) changes no value:
the padded units compute act(0) * 0 = 0 and feed the down projection through zero weights. Done on the
module instances, no modeling file forked; `unpad_vision_mlp` restores the original modules (the
benchmarks' transformers baseline runs those).

    pad_vision_mlp(model)      # after loading; returns how many MLPs were padded
"""
import torch
from torch import nn

PAD_MULTIPLE = 128


def _padded(linear: nn.Linear, out_features: int, in_features: int) -> nn.Linear:
    new = nn.Linear(in_features, out_features, bias=linear.bias is not None, device=linear.weight.device,
                    dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:linear.out_features, :linear.in_features] = linear.weight
        if linear.bias is not None:
            new.bias.zero_()
            new.bias[:linear.out_features] = linear.bias
    new.requires_grad_(False)
    return new


def _mlps(model):
    """model: a Qwen2.5-VL model, or its vision tower itself."""
    visual = model if hasattr(model, "blocks") else model.model.visual
    return [block.mlp for block in visual.blocks]


def pad_vision_mlp(model, multiple: int = PAD_MULTIPLE) -> int:
    """Pad every vision block's MLP width up to `multiple` (idempotent). Returns the MLPs padded now."""
    count = 0
    for mlp in _mlps(model):
        width = mlp.gate_proj.out_features
        if hasattr(mlp, "_omni_original") or width % multiple == 0:
            continue
        # exact nn.Linear only: a quantized tower (bitsandbytes' Linear4bit subclasses nn.Linear, with a
        # uint8 weight) keeps its own layers
        if not all(type(m) is nn.Linear for m in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)):
            continue
        padded = -(-width // multiple) * multiple
        mlp._omni_original = (mlp.gate_proj, mlp.up_proj, mlp.down_proj)
        mlp.gate_proj = _padded(mlp.gate_proj, padded, mlp.gate_proj.in_features)
        mlp.up_proj = _padded(mlp.up_proj, padded, mlp.up_proj.in_features)
        mlp.down_proj = _padded(mlp.down_proj, mlp.down_proj.out_features, padded)
        count += 1
    return count


def unpad_vision_mlp(model) -> int:
    """Put the original (unpadded) MLP layers back. Returns how many were restored."""
    count = 0
    for mlp in _mlps(model):
        original = mlp.__dict__.pop("_omni_original", None)
        if original is not None:
            mlp.gate_proj, mlp.up_proj, mlp.down_proj = original
            count += 1
    return count
