"""The vision tower's attention through our hook: every window / frame group of a layer in one kernel launch.

transformers' Qwen2.5-VL vision attention (5.17 and 5.23 alike) calls the registered
AttentionInterface function once per layer with `cu_seq_lens_q/k` (the packed windows or frame
groups) when `is_flash_attention_requested(config)` holds, i.e. when the name contains "flash";
any other name gets one call per segment (thousands per layer on a long video). So our function
is registered under a name with "flash" in it and runs `kernels.varlen_attention` over all
segments at once (the pure-PyTorch reference on a CPU: Triton needs a GPU outside its test
interpreter).

That name must never reach `from_pretrained` or a model's `__init__`: there
`_check_and_adjust_attn_implementation` treats any "flash" name as a flash-attn build and tries
to import it, falling back to loading a hub kernel of that name. Models are therefore built with
"sdpa" in the vision tower and switched afterwards by `set_vision_attention`, which goes through
`set_attn_implementation({"vision_config": ...})`: for sub-models that only checks that the name
is registered (`get_correct_attn_implementation`, same in 5.17 and 5.23).

    set_vision_attention(model, VISION_ATTN_NAME)   # ours (registers it; idempotent)
    set_vision_attention(model, "sdpa")             # transformers' own per-segment loop

Ours also pads the MLP width (engine/vision_mlp.py) and installs the fused block forward
(engine/vision_block.py), which calls `packed_attention` directly; "sdpa" / "eager" undo both.
"""
import torch

from engine.vision_mlp import pad_vision_mlp, unpad_vision_mlp
from kernels.reference.varlen_attention import varlen_attention_reference
from omnivideo_app.errors import ConfigError

# Contains "flash" (selects the cu_seqlens path), but no digit after it (it must not match
# transformers' `flash_attention_<n>` / version checks), no "/" (not a hub kernel id) and no "sdpa".
VISION_ATTN_NAME = "omnivideo_vision_flash"
VISION_IMPLS = (VISION_ATTN_NAME, "sdpa", "eager")
BACKENDS = ("auto", "triton", "reference")
_backend = "auto"


def set_vision_backend(name: str) -> None:
    """"auto": Triton on CUDA tensors, the reference elsewhere; "triton" / "reference" force one (tests:
    "triton" on a CPU needs TRITON_INTERPRET=1). Covers the attention and the fused block's kernels."""
    global _backend
    if name not in BACKENDS:
        raise ConfigError(f"vision attention backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    _backend = name


def use_triton(device: torch.device) -> bool:
    """Whether the vision tower's kernels run in Triton (else their pure-PyTorch references) on `device`."""
    return _backend == "triton" or (_backend == "auto" and device.type == "cuda")


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, scale: float,
                     max_seqlen: int | None = None) -> torch.Tensor:
    """Non-causal attention within each packed segment, every segment in one call.

    q, k, v [N, H, D] (last dim contiguous, other strides free); cu_seqlens [S + 1] integer boundaries;
    max_seqlen the longest segment if known (a Python int). Returns [N, H, D] contiguous in q.dtype.
    """
    cu = cu_seqlens.to(torch.int32).contiguous()
    if use_triton(q.device):
        from kernels.varlen_attention import varlen_attention      # imported late: Triton is optional on a CPU

        return varlen_attention(q, k, v, cu, scale=scale, max_seqlen=max_seqlen)
    return varlen_attention_reference(q, k, v, cu, scale=scale)


def vision_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0,
                     cu_seq_lens_q=None, cu_seq_lens_k=None, max_length_q=None, max_length_k=None,
                     is_causal=False, **kwargs):
    """AttentionInterface entry point for the vision tower (non-causal, within segments).

    Args:
        query, key, value: [1, H, N, D]: all patches of the call, packed (views of the fused qkv).
        cu_seq_lens_q / cu_seq_lens_k: [S + 1] int32 segment boundaries (the same tensor); None means
            one segment of all N tokens.
        max_length_q: the longest segment (a Python int transformers computed anyway).
    Returns:
        ([1, N, H, D], None) as transformers expects from flash-style functions.
    """
    assert query.shape[0] == 1 and attention_mask is None and not is_causal, "packed non-causal vision attention"
    assert not dropout, "inference only"
    cu = cu_seq_lens_q
    if cu is None:
        cu = torch.tensor([0, query.shape[2]], dtype=torch.int32, device=query.device)
    assert cu_seq_lens_k is None or cu_seq_lens_k is cu or torch.equal(cu_seq_lens_k, cu), "self-attention only"
    q, k, v = (x[0].transpose(0, 1) for x in (query, key, value))     # [N, H, D] views, no copy
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return packed_attention(q, k, v, cu, scale, max_length_q).unsqueeze(0), None


def register_vision_attention() -> None:
    """Register `vision_attention` under VISION_ATTN_NAME (safe to call more than once)."""
    from transformers import AttentionInterface

    AttentionInterface.register(VISION_ATTN_NAME, vision_attention)


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
    padded (engine/vision_mlp.py, exact) and the fused block forward (engine/vision_block.py);
    transformers' own gets its own forward and the original layers back."""
    from engine.vision_block import fuse_vision_blocks, unfuse_vision_blocks   # here: vision_block imports this module

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
