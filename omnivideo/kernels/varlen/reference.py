"""Pure-PyTorch definition of variable-length attention over packed segments: the spec of `omnivideo.kernels.varlen.varlen_attention`.

Tokens of several independent sequences ("segments": the windows or frame groups of a vision
tower) are packed along one axis; `cu_seqlens` [S + 1] int32 holds their boundaries, segment s being
tokens cu_seqlens[s] .. cu_seqlens[s + 1] - 1 (cu_seqlens[0] = 0, non-decreasing, last = N; empty
segments are allowed and contribute nothing). Each query attends, without a causal mask, to every
key of its own segment and to nothing else:

    out[t, h] = softmax_j(q[t, h] . k[j, h] * scale) @ v[j, h],   j in the segment of t
    lse[h, t] = logsumexp_j(q[t, h] . k[j, h] * scale)             (natural log)

Layout is flash-attn's varlen one, token-major: q, k, v, out [N, H, D]. The math runs in fp32 and
the output is cast back to q's dtype.

    out = varlen_attention_reference(q, k, v, cu_seqlens, scale=80 ** -0.5)
"""
import torch
import torch.nn.functional as F

_SCORE_BUDGET = 1 << 25


def _segments(cu_seqlens: torch.Tensor) -> list[tuple[int, int]]:
    """[(start, length)] of the non-empty segments."""
    cu = cu_seqlens.tolist()
    return [(a, b - a) for a, b in zip(cu, cu[1:]) if b > a]


def varlen_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                               scale: float, return_lse: bool = False):
    """Non-causal attention within each packed segment.

    Args:
        q, k, v: [N, H, D] (any strides).
        cu_seqlens: [S + 1] integer segment boundaries (0 first, N last, non-decreasing).
        scale: multiplies the scores (usually D ** -0.5).
        return_lse: also return the log-sum-exp of the scaled scores.
    Returns:
        out [N, H, D] in q.dtype, and with return_lse lse [H, N] float32.
    """
    N, H, D = q.shape
    assert k.shape == v.shape == (N, H, D), f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}"
    assert cu_seqlens.dim() == 1 and int(cu_seqlens[0]) == 0 and int(cu_seqlens[-1]) == N, cu_seqlens
    out = torch.empty(N, H, D, dtype=q.dtype, device=q.device)
    lse = torch.empty(H, N, dtype=torch.float32, device=q.device)
    # Segments of equal length are stacked into one batched call: the same math as one call per
    # segment, far fewer calls (a video's windows mostly share one length).
    by_length: dict[int, list[int]] = {}
    for start, length in _segments(cu_seqlens):
        by_length.setdefault(length, []).append(start)
    for length, all_starts in by_length.items():
        # bound the scores of one batched call to about _SCORE_BUDGET elements
        per_call = max(1, _SCORE_BUDGET // (H * length * length))
        for i in range(0, len(all_starts), per_call):
            _attend(q, k, v, all_starts[i:i + per_call], length, scale, out, lse if return_lse else None)
    return (out, lse) if return_lse else out


def _attend(q, k, v, starts: list[int], length: int, scale: float, out: torch.Tensor, lse: torch.Tensor | None):
    """Segments of one length starting at `starts`, batched: writes their rows of out (and lse)."""
    H, D = q.shape[1:]
    rows = (torch.tensor(starts, device=q.device)[:, None] + torch.arange(length, device=q.device)).flatten()
    qs, ks, vs = (x[rows].float().view(len(starts), length, H, D).transpose(1, 2) for x in (q, k, v))
    o = F.scaled_dot_product_attention(qs, ks, vs, scale=scale)           # [B, H, L, D]
    out[rows] = o.transpose(1, 2).reshape(-1, H, D).to(out.dtype)
    if lse is not None:
        s = torch.logsumexp(qs @ ks.transpose(-1, -2) * scale, dim=-1)     # [B, H, L]
        lse[:, rows] = s.permute(1, 0, 2).reshape(H, -1)
