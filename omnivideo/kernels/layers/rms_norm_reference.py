"""Pure-PyTorch definition of RMSNorm and residual-add + RMSNorm: the spec of `omnivideo.kernels.layers.rms_norm`.

The rounding is transformers' Qwen2.5-VL RMSNorm (`Qwen2_5_VLRMSNorm`) step by step, so a tower
run through these equals transformers' own bit for bit on one device:

    h = x.float();  h = h * rsqrt(mean(h ** 2) + eps)       # fp32
    y = weight * h.to(x.dtype)                             # cast BEFORE the weight product

and the residual add of `Qwen2_5_VLVisionBlock` is one add in the activations' dtype (rounded
there) before the norm reads it.

    y = rms_norm_reference(x, weight, eps=1e-6)                    # x [N, C], weight [C]
    r, y = add_rms_norm_reference(x, delta, weight, eps=1e-6)      # r = x + delta, y = rms_norm(r)
"""
import torch


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim.

    Args:
        x: [N, C] fp16 / bf16 / fp32.
        weight: [C], x's dtype.
        eps: added to the mean square.
    Returns:
        [N, C] in x.dtype.
    """
    h = x.to(torch.float32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(x.dtype)


def add_rms_norm_reference(x: torch.Tensor, delta: torch.Tensor, weight: torch.Tensor,
                           eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual add, then RMSNorm of the sum.

    Args:
        x, delta: [N, C], one dtype (the residual stream and what a sub-layer adds to it).
        weight: [C]; eps as in `rms_norm_reference`.
    Returns:
        (r, y): r = x + delta [N, C] rounded to x.dtype; y = rms_norm_reference(r, weight, eps).
    """
    r = x + delta
    return r, rms_norm_reference(r, weight, eps)
