"""Pure-PyTorch definition of the vision tower's rotary step on the fused qkv output: the spec of `omnivideo.kernels.layers.vision_rotary`.

Qwen2.5-VL's vision attention splits its qkv projection [N, 3 * H * D] into q, k, v [N, H, D] and
rotates q and k with `apply_rotary_pos_emb_vision`: fp32 math on upcast q / k, `rotate_half`
(out[d] = x[d] * cos[d] + r[d] * sin[d] with r[d] = -x[d + D/2] for d < D/2, x[d - D/2] otherwise),
and one cast back to the input dtype at the end. This reproduces that rounding exactly and returns
q and k as contiguous [N, H, D] tensors (v stays a strided view of qkv: it is not rotated).

    q, k = rotary_qk_reference(qkv, cos, sin, num_heads=16)    # qkv [N, 3*H*D]; cos, sin [N, D] fp32
"""
import torch


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rotary_qk_reference(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                        num_heads: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary position embedding of the q and k parts of a fused qkv projection.

    Args:
        qkv: [N, 3 * H * D] fp16 / bf16 / fp32, laid out (q | k | v), each head-major [H, D].
        cos, sin: [N, D] float32 (any dtype is upcast, as transformers does).
        num_heads: H.
    Returns:
        (q, k): [N, H, D] each, contiguous, in qkv's dtype.
    """
    n = qkv.shape[0]
    d = cos.shape[-1]
    assert qkv.shape[1] == 3 * num_heads * d, f"qkv {tuple(qkv.shape)} is not [N, 3 * {num_heads} * {d}]"
    parts = qkv.view(n, 3, num_heads, d)
    c, s = cos.float().unsqueeze(-2), sin.float().unsqueeze(-2)     # [N, 1, D]
    out = []
    for x in (parts[:, 0], parts[:, 1]):
        xf = x.float()
        out.append(((xf * c) + (_rotate_half(xf) * s)).to(qkv.dtype).contiguous())
    return out[0], out[1]
