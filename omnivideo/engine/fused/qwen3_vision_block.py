"""The Qwen3-VL vision block on our attention: one varlen launch per block and one rotary kernel.

transformers' `Qwen3VLVisionBlock` (modeling_qwen3_vl.py, 5.25) differs from Qwen2.5-VL's where the fused
Qwen2.5-VL block (vision_block.py) would not apply: `nn.LayerNorm` (with bias, eps 1e-6) instead of RMSNorm,
and an MLP without a gate (`linear_fc1` -> GELU-tanh -> `linear_fc2`, 1152 -> 4304 -> 1152 at 8B). Its
attention is the same module shape (fused qkv with bias, full-head-dim rotate-half rotary from fp32 cos / sin
[N, D], proj), and every block attends within frame groups (no windows; `cu_seqlens` per temporal group).

What costs time in transformers' block is the attention module, not the norms or the activation: LayerNorm
and `F.gelu(approximate="tanh")` are one native kernel each, but the rotary step is ~14 fp32 elementwise
kernels plus the copies of the permuted q / k views, and without a "flash" attention name the attention is
one SDPA call per frame group (128 per block at 32K visual tokens). The fused forward, installed as the
instance attribute `block.forward` like the Qwen2.5-VL one:

    norm1 (LayerNorm) -> qkv GEMM -> rotary_qk (q, k contiguous; v a strided view of qkv)
    -> packed_attention (one varlen launch) -> proj GEMM -> residual add
    -> norm2 (LayerNorm) -> fc1 GEMM -> act (GELU-tanh) -> fc2 GEMM -> residual add

The norms and the MLP run the block's own modules (the same kernels transformers runs), the rotary and the
attention are the Qwen2.5-VL block's ops (`block_attention`), so on a CPU the tower equals transformers' to
fp32 accuracy. The DeepStack mergers and the final merger (LayerNorm -> fc -> GELU -> fc over 2x2-merged
rows) run once per tower forward and stay transformers'. Only towers of plain fp16 / bf16 / fp32 layers are
fused; a quantized tower keeps transformers' forward.

    fuse_qwen3_vision_blocks(model)     # -> blocks fused now
    unfuse_qwen3_vision_blocks(model)   # -> blocks given back transformers' forward
"""
import torch
from torch import nn

from omnivideo.engine.fused.vision_block import (DTYPES, block_attention, block_ops, has_forward, install_forward,
                                                 remove_forward, runs_fused)


def _blocks(model) -> list[nn.Module]:
    """model: a Qwen3-VL model, or its vision tower itself."""
    visual = model if hasattr(model, "blocks") else model.model.visual
    return list(visual.blocks)


def is_qwen3_block(block: nn.Module) -> bool:
    """Whether `block` has Qwen3-VL's structure (a gateless fc1 / fc2 MLP and LayerNorms)."""
    mlp = getattr(block, "mlp", None)
    return hasattr(mlp, "linear_fc1") and hasattr(mlp, "linear_fc2") and isinstance(block.norm1, nn.LayerNorm)


def fusable(block: nn.Module) -> bool:
    """Whether the fused forward computes what this block's own forward does: plain `nn.Linear` layers (a
    bitsandbytes layer subclasses it, so the type must match exactly), LayerNorms, one fp16/bf16/fp32 dtype
    and device, an even head dim (rotate-half)."""
    if not is_qwen3_block(block):
        return False
    attn, mlp = block.attn, block.mlp
    linears = (attn.qkv, attn.proj, mlp.linear_fc1, mlp.linear_fc2)
    if not all(type(m) is nn.Linear for m in linears) or type(block.norm2) is not nn.LayerNorm:
        return False
    weights = [m.weight for m in linears] + [block.norm1.weight, block.norm2.weight]
    if weights[0].dtype not in DTYPES or len({(w.dtype, w.device) for w in weights}) != 1:
        return False
    return attn.head_dim % 2 == 0 and attn.num_heads * attn.head_dim == attn.qkv.in_features


def fused_block_forward(block: nn.Module, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor,
                        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                        max_seqlen: int | None = None, **kwargs) -> torch.Tensor:
    """`Qwen3VLVisionBlock.forward` with one rotary kernel and one attention launch.

    Args:
        hidden_states: [N, C] patches of the call, in frame-group order.
        cu_seqlens: [S + 1] int32 boundaries of the frame groups.
        position_embeddings: (cos, sin), [N, D] float32 each (D = head dim: h and w angles, rotate-half).
        max_seqlen: the longest segment (transformers passes a Python int).
    Returns:
        [N, C] in hidden_states' dtype.
    """
    if not runs_fused(block, hidden_states, position_embeddings):
        return type(block).forward(block, hidden_states, cu_seqlens, position_embeddings=position_embeddings,
                                   max_seqlen=max_seqlen, **kwargs)
    ops = block_ops(hidden_states.device, hidden_states.dtype)
    cos, sin = (t.float() for t in position_embeddings)        # no-ops: transformers hands fp32
    if isinstance(max_seqlen, torch.Tensor):
        max_seqlen = int(max_seqlen)
    x = hidden_states + block_attention(block, ops, block.norm1(hidden_states), cu_seqlens, cos, sin, max_seqlen)
    return x + block.mlp(block.norm2(x))


def is_fused(block: nn.Module) -> bool:
    return has_forward(block, fused_block_forward)


def fuse_qwen3_vision_blocks(model) -> int:
    """Install the fused forward on every fusable Qwen3-VL vision block (idempotent). Returns the blocks fused now."""
    return install_forward(_blocks(model), fused_block_forward, fusable)


def unfuse_qwen3_vision_blocks(model) -> int:
    """Give every fused block transformers' forward back. Returns the blocks restored."""
    return remove_forward(_blocks(model), fused_block_forward)
