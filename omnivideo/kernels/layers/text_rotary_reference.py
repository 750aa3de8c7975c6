"""Pure-PyTorch definition of the language model's rotary step: the spec of `omnivideo.kernels.layers.text_rotary`.

transformers' `apply_rotary_pos_emb` for Qwen2.5-VL's text attention computes
`q * cos + rotate_half(q) * sin` (and the same for k) in the tensors' dtype: with bf16 q and bf16
cos / sin that is three roundings per element (product, product, sum). The spec here is the same
formula in fp32 with one rounding at the end, so a fused kernel can match it exactly; it differs from
transformers' bf16 result by at most about one bf16 ulp (tests/kernels/test_text_rotary.py measures it).

    q2, k2 = text_rotary_reference(q, k, cos, sin)   # q [B, Hq, S, D], k [B, Hk, S, D]; cos, sin [B, S, D]
"""
import torch


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def text_rotary_reference(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor,
                          sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated (q, k) in their own dtypes and shapes.

    Args:
        q: [B, Hq, S, D]; k: [B, Hk, S, D] (fp16 / bf16 / fp32, D even).
        cos, sin: [B, S, D], shared by every head (any float dtype; read as fp32).
    """
    c, s = cos.float()[:, None], sin.float()[:, None]
    return tuple((x.float() * c + _rotate_half(x.float()) * s).to(x.dtype) for x in (q, k))
