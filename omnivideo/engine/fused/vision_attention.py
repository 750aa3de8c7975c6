"""The vision tower's attention: every window / frame group of a layer in one kernel launch.

`packed_attention` runs non-causal attention within each packed segment (the windows or frame groups
given by `cu_seqlens`) in one call: `omnivideo.kernels.varlen` on CUDA, its pure-PyTorch reference
elsewhere (the one switch in `omnivideo.kernels`). The fused block forward
(omnivideo/engine/fused/vision_block.py) calls it directly; `vision_attention` is the same thing as an
AttentionInterface function, for towers whose blocks are not fused.

The registered name has no "flash" in it: transformers >= 5.25 sends any such name set through
`set_attn_implementation` to its kernel hub (5.17-5.23 gave such names its cu_seqlens path). Without
"flash", transformers calls the function once per segment; it handles that as one segment per call.
Which attention the tower runs is set by omnivideo/engine/fused/vision_tower.py.
"""
import torch

from omnivideo.kernels import use_triton
from omnivideo.kernels.varlen.reference import varlen_attention_reference

# No "flash" (see above), no "/" (not a hub kernel id), no "sdpa".
VISION_ATTN_NAME = "omnivideo_vision"


def packed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, scale: float,
                     max_seqlen: int | None = None) -> torch.Tensor:
    """Non-causal attention within each packed segment, every segment in one call.

    q, k, v [N, H, D] (last dim contiguous, other strides free); cu_seqlens [S + 1] integer boundaries;
    max_seqlen the longest segment if known (a Python int). Returns [N, H, D] contiguous in q.dtype.
    """
    cu = cu_seqlens.to(torch.int32).contiguous()
    if use_triton(q.device, q.dtype):
        from omnivideo.kernels.varlen.varlen_attention import varlen_attention      # imported late: Triton is optional on a CPU

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
