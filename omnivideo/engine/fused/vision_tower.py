"""Which attention the vision tower runs: ours (fused blocks over one packed-attention launch) or transformers'.

    set_vision_attention(model, VISION_ATTN_NAME)   # ours (registers it; idempotent)
    set_vision_attention(model, "sdpa")             # transformers' own per-segment loop

Models are built with "sdpa" in the vision tower and switched afterwards through
`set_attn_implementation({"vision_config": ...})`, which for sub-models only checks that the name is
registered. Ours also installs the fused block forward of the tower's block type: Qwen2.5-VL's blocks get
their MLP width padded (vision_mlp.py, exact) and vision_block.py's forward; Qwen3-VL's (LayerNorm, gateless
GELU MLP) get qwen3_vision_block.py's. "sdpa" / "eager" undo it.
"""
from omnivideo.engine.fused.qwen3_vision_block import (fuse_qwen3_vision_blocks, is_qwen3_block,
                                                        unfuse_qwen3_vision_blocks)
from omnivideo.engine.fused.vision_attention import VISION_ATTN_NAME, register_vision_attention
from omnivideo.engine.fused.vision_block import fuse_vision_blocks, unfuse_vision_blocks
from omnivideo.engine.fused.vision_mlp import pad_vision_mlp, unpad_vision_mlp
from omnivideo.errors import ConfigError

VISION_IMPLS = (VISION_ATTN_NAME, "sdpa", "eager")


def _vision_tower(model):
    inner = getattr(model, "model", model)           # *ForConditionalGeneration or the inner *Model
    visual = getattr(inner, "visual", None)
    if visual is None:
        raise ConfigError(f"{type(model).__name__} has no vision tower (expected a Qwen2.5-VL or Qwen3-VL model)")
    return visual


def _install_ours(model) -> None:
    if is_qwen3_block(_vision_tower(model).blocks[0]):
        fuse_qwen3_vision_blocks(model)       # its MLP width (4304 at 8B) is already 16-byte aligned
    else:
        pad_vision_mlp(model)                 # aligned GEMMs (exact), then the fused blocks over them
        fuse_vision_blocks(model)


def _remove_ours(model) -> None:
    if is_qwen3_block(_vision_tower(model).blocks[0]):
        unfuse_qwen3_vision_blocks(model)
    else:
        unfuse_vision_blocks(model)
        unpad_vision_mlp(model)


def vision_attention_of(model) -> str:
    """The attention implementation the vision tower runs now."""
    return _vision_tower(model).config._attn_implementation


def set_vision_attention(model, impl: str) -> None:
    """Route the vision tower's attention to `impl` (VISION_ATTN_NAME, or "sdpa" / "eager" for
    transformers' own); the text config's attention is left as it is. Our tower also gets its MLP width
    padded (omnivideo/engine/fused/vision_mlp.py, exact) and the fused block forward (omnivideo/engine/fused/vision_block.py);
    transformers' own gets its own forward and the original layers back."""
    if impl not in VISION_IMPLS:
        raise ConfigError(f"vision attention must be one of {', '.join(VISION_IMPLS)}, got {impl!r}")
    register_vision_attention()
    visual = _vision_tower(model)
    text_config = model.config.get_text_config()
    text_impl = text_config._attn_implementation
    model.set_attn_implementation({"vision_config": impl})
    # our tower also gets its block type's fused forward; transformers' own runs its own forward over the
    # original layers
    if impl == VISION_ATTN_NAME:
        _install_ours(model)
    else:
        _remove_ours(model)
    if visual.config._attn_implementation != impl:       # a transformers that did not reach the sub-model
        visual.config._attn_implementation_internal = impl
    assert text_config._attn_implementation == text_impl, (text_config._attn_implementation, text_impl)
    assert visual.blocks[0].attn.config._attn_implementation == impl
