"""The Qwen2.5-VL vision block with its elementwise work fused: one kernel per step between the GEMMs.

transformers' `Qwen2_5_VLVisionBlock` runs RMSNorm, the rotary step and SiLU * up as chains of small
fp32 elementwise kernels (about 64% of the tower's GPU time at 32K visual tokens once attention is
one launch; docs/vision.md). The fused forward, installed as the instance attribute `block.forward`
(no modeling file forked; transformers' hooks and `GradientCheckpointingLayer.__call__` still run):

    rms_norm(norm1) -> qkv GEMM -> rotary_qk (q, k contiguous; v a strided view of qkv)
    -> packed_attention (one varlen launch, [N, H, D]) -> proj GEMM -> add_rms_norm (residual + norm2)
    -> gate_up GEMM (one [2I, C] weight) -> silu_mul -> down GEMM -> residual add

Each kernel reproduces transformers' rounding (omnivideo/kernels/), so on a CPU, where the
references run, the tower equals transformers' to fp32 accuracy. The gate/up weight is built once
at install; gate_proj / up_proj are re-pointed to views of it (no second copy; their own forward
still works). Only towers of plain fp16 / bf16 / fp32 `nn.Linear` layers are fused: a quantized
tower keeps transformers' forward. The kernel switch (`omnivideo.kernels`) picks Triton or the references, as for
the attention.

    fuse_vision_blocks(model)      # -> blocks fused now (set_vision_attention does it for ours)
    unfuse_vision_blocks(model)    # -> blocks given back transformers' forward
"""
import types
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from omnivideo.engine.fused.vision_attention import packed_attention
from omnivideo.kernels import use_triton
from omnivideo.kernels.layers.rms_norm_reference import add_rms_norm_reference, rms_norm_reference
from omnivideo.kernels.layers.silu_mul_reference import silu_mul_reference
from omnivideo.kernels.layers.vision_rotary_reference import rotary_qk_reference

DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class BlockOps(NamedTuple):
    """The elementwise ops of one fused forward, all from one backend."""
    rms_norm: Callable
    add_rms_norm: Callable
    rotary_qk: Callable
    silu_mul: Callable


def block_ops(device: torch.device, dtype: torch.dtype | None = None) -> BlockOps:
    """Triton launchers when `use_triton(device, dtype)` (CUDA, or forced for tests), else the references.
    Looked up on every call, so `omnivideo.kernels.backend` and tests' counting wrappers take effect at once."""
    if use_triton(device, dtype):
        # imported late: Triton is optional on a CPU
        from omnivideo.kernels.layers import rms_norm as norm_kernels, silu_mul as silu_kernels
        from omnivideo.kernels.layers import vision_rotary as rotary_kernels

        return BlockOps(norm_kernels.rms_norm, norm_kernels.add_rms_norm, rotary_kernels.rotary_qk,
                        silu_kernels.silu_mul)
    return BlockOps(rms_norm_reference, add_rms_norm_reference, rotary_qk_reference, silu_mul_reference)


def _blocks(model) -> list[nn.Module]:
    """model: a Qwen2.5-VL model, or its vision tower itself."""
    visual = model if hasattr(model, "blocks") else model.model.visual
    return list(visual.blocks)


def _is_silu(act) -> bool:
    from transformers.activations import SiLUActivation

    return isinstance(act, (SiLUActivation, nn.SiLU))


def fusable(block: nn.Module) -> bool:
    """Whether the fused forward computes what this block's own forward does: plain `nn.Linear` layers
    (a bitsandbytes layer subclasses it, so the type must match exactly), one fp16/bf16/fp32 dtype and
    device, a SiLU MLP whose gate and up both have a bias or neither, an even head dim."""
    attn, mlp = block.attn, block.mlp
    linears = (attn.qkv, attn.proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj)
    if not all(type(m) is nn.Linear for m in linears) or not _is_silu(mlp.act_fn):
        return False
    weights = [m.weight for m in linears] + [block.norm1.weight, block.norm2.weight]
    if weights[0].dtype not in DTYPES or len({(w.dtype, w.device) for w in weights}) != 1:
        return False
    if (mlp.gate_proj.bias is None) != (mlp.up_proj.bias is None):
        return False
    return attn.head_dim % 2 == 0 and mlp.gate_proj.weight.shape == mlp.up_proj.weight.shape


def _fuse_gate_up(mlp: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Concatenate gate and up into one [2I, C] weight (and [2I] bias); re-point both layers to views of it."""
    gate, up = mlp.gate_proj, mlp.up_proj
    width = gate.out_features
    # normal tensors even when first called inside inference_mode (a forward after `model.to(...)`)
    with torch.inference_mode(False), torch.no_grad():
        weight = torch.cat([gate.weight, up.weight])
        bias = torch.cat([gate.bias, up.bias]) if gate.bias is not None else None
    for layer, rows in ((gate, slice(0, width)), (up, slice(width, 2 * width))):
        layer.weight = nn.Parameter(weight[rows], requires_grad=layer.weight.requires_grad)
        if bias is not None:
            layer.bias = nn.Parameter(bias[rows], requires_grad=layer.bias.requires_grad)
    mlp._omni_gate_up = (weight, bias)
    return weight, bias


def _still_views(mlp: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether gate_proj / up_proj still read the fused tensors (`model.to(...)` or new layers break that)."""
    width = mlp.gate_proj.out_features
    pairs = [(mlp.gate_proj.weight, weight[:width]), (mlp.up_proj.weight, weight[width:])]
    if bias is not None:
        pairs += [(mlp.gate_proj.bias, bias[:width]), (mlp.up_proj.bias, bias[width:])]
    return all(p is not None and p.data_ptr() == t.data_ptr() and p.shape == t.shape and p.device == t.device
               for p, t in pairs)


def gate_up(mlp: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The MLP's fused gate/up weight [2I, C] and bias [2I] (or None), rebuilt if the layers moved on."""
    fused = mlp.__dict__.get("_omni_gate_up")
    if fused is None or not _still_views(mlp, *fused):
        fused = _fuse_gate_up(mlp)
    return fused


def runs_fused(block: nn.Module, x: torch.Tensor, position_embeddings) -> bool:
    """Inference on the block's own dtype and device with cos / sin given; anything else (autograd, a
    cast tower) goes to transformers' forward."""
    weight = block.norm1.weight
    if position_embeddings is None or x.dim() != 2 or x.dtype != weight.dtype or x.device != weight.device:
        return False
    return not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))


def block_attention(block: nn.Module, ops: BlockOps, h: torch.Tensor, cu_seqlens: torch.Tensor, cos: torch.Tensor,
               sin: torch.Tensor, max_seqlen: int | None) -> torch.Tensor:
    """What the attention adds to the residual stream, from the normed h [N, C]. A function of its own
    so that qkv, q, k and the attention output are freed before the MLP allocates its [N, 2I]. Shared with
    the Qwen3-VL block (qwen3_vision_block.py): both attention modules have qkv / proj / num_heads / scaling."""
    attn = block.attn
    n = h.shape[0]
    qkv = F.linear(h, attn.qkv.weight, attn.qkv.bias)                         # [N, 3 * H * D]
    q, k = ops.rotary_qk(qkv, cos, sin, attn.num_heads)                      # [N, H, D] each
    v = qkv.view(n, 3, attn.num_heads, attn.head_dim)[:, 2]                  # strided view, no copy
    o = packed_attention(q, k, v, cu_seqlens, attn.scaling, max_seqlen)     # [N, H, D]
    return F.linear(o.reshape(n, -1), attn.proj.weight, attn.proj.bias)


def fused_block_forward(block: nn.Module, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor,
                        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
                        max_seqlen: int | None = None, **kwargs) -> torch.Tensor:
    """`Qwen2_5_VLVisionBlock.forward` with fused elementwise steps.

    Args:
        hidden_states: [N, C] patches of the call, packed in window order.
        cu_seqlens: [S + 1] int32 boundaries of the windows (or frame groups) this block attends within.
        position_embeddings: (cos, sin), [N, D] float32 each.
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
    h = ops.rms_norm(hidden_states, block.norm1.weight, block.norm1.variance_epsilon)
    delta = block_attention(block, ops, h, cu_seqlens, cos, sin, max_seqlen)
    del h
    x, h = ops.add_rms_norm(hidden_states, delta, block.norm2.weight, block.norm2.variance_epsilon)
    del delta
    weight, bias = gate_up(block.mlp)
    act = ops.silu_mul(F.linear(h, weight, bias))                             # [N, I]; [N, 2I] freed at once
    del h
    return x + F.linear(act, block.mlp.down_proj.weight, block.mlp.down_proj.bias)


def has_forward(block: nn.Module, forward) -> bool:
    """Whether `block` runs `forward` (a function installed as its instance attribute by `install_forward`)."""
    return getattr(block.__dict__.get("forward"), "__func__", None) is forward


def install_forward(blocks, forward, can_fuse, prepare=None) -> int:
    """Install `forward` on every block with `can_fuse(block)` (idempotent); `prepare(block)` first. Returns
    the blocks fused now. Shared with the Qwen3-VL block (qwen3_vision_block.py)."""
    count = 0
    for block in blocks:
        # a forward someone else installed (an accelerate device hook) is left alone
        if "forward" in block.__dict__ or not can_fuse(block):
            continue
        if prepare is not None:
            prepare(block)
        block.forward = types.MethodType(forward, block)
        count += 1
    return count


def remove_forward(blocks, forward) -> int:
    """Give every block running `forward` transformers' forward back. Returns the blocks restored."""
    count = 0
    for block in blocks:
        if has_forward(block, forward):
            del block.__dict__["forward"]
            count += 1
    return count


def is_fused(block: nn.Module) -> bool:
    return has_forward(block, fused_block_forward)


def fuse_vision_blocks(model) -> int:
    """Install the fused forward on every fusable vision block (idempotent). Returns the blocks fused now."""
    # the gate/up weight is built once here, not on the first forward
    return install_forward(_blocks(model), fused_block_forward, fusable, prepare=lambda b: gate_up(b.mlp))


def unfuse_vision_blocks(model) -> int:
    """Give every fused block transformers' forward back. gate_proj / up_proj stay views of the fused
    storage (same values; nothing else holds it). Returns the blocks restored."""
    blocks = _blocks(model)
    count = remove_forward(blocks, fused_block_forward)
    for block in blocks:
        block.mlp.__dict__.pop("_omni_gate_up", None)
    return count
