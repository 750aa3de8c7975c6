"""Which attention the vision tower runs: ours (fused blocks over one packed-attention launch) or transformers'.

    set_vision_attention(model, VISION_ATTN_NAME)   # ours (registers it; idempotent)
    set_vision_attention(model, "sdpa")             # transformers' own per-segment loop

Models are built with "sdpa" in the vision tower and switched afterwards through
`set_attn_implementation({"vision_config": ...})`, which for sub-models only checks that the name is
registered. Ours also pads the MLP width (vision_mlp.py, exact) and installs the fused block forward
(vision_block.py); "sdpa" / "eager" undo both.
"""
from omnivideo.engine.fused.vision_attention import VISION_ATTN_NAME, register_vision_attention
from omnivideo.engine.fused.vision_block import fuse_vision_blocks, unfuse_vision_blocks
from omnivideo.engine.fused.vision_mlp import pad_vision_mlp, unpad_vision_mlp
from omnivideo.errors import ConfigError

VISION_IMPLS = (VISION_ATTN_NAME, "sdpa", "eager")


def _vision_tower(model):
    inner = getattr(model, "model", model)           # Qwen2_5_VLForConditionalGeneration or Qwen2_5_VLModel
    visual = getattr(inner, "visual", None)
    if visual is None:
        raise ConfigError(f"{type(model).__name__} has no vision tower (expected a Qwen2.5-VL model)")
    return visual


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
    # our tower also pads its MLP width for aligned GEMMs (exact), then fuses its blocks over the padded
    # layers; transformers' own runs its own forward over the original layers
    if impl == VISION_ATTN_NAME:
        pad_vision_mlp(model)
        fuse_vision_blocks(model)
    else:
        unfuse_vision_blocks(model)
        unpad_vision_mlp(model)
    if visual.config._attn_implementation != impl:       # a transformers that did not reach the sub-model
        visual.config._attn_implementation_internal = impl
    assert text_config._attn_implementation == text_impl, (text_config._attn_implementation, text_impl)
    assert visual.blocks[0].attn.config._attn_implementation == impl
