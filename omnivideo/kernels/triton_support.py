"""Shared helpers for the Triton kernels: interpreter awareness and launcher checks.

Under `TRITON_INTERPRET=1` (CPU tests) kernels run in numpy, one program at a time:
- `@triton.autotune` with more than one config needs a GPU driver, so only the first is kept;
- `tl.dot` on bf16 operands is silently wrong, so launchers refuse bf16 there.
The variable is read when a kernel is *decorated*, so it must be set before kernels are imported.
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels import INTERPRET  # noqa: F401  (read once: kernels are decorated at import)


def autotune(configs, key, **kwargs):
    """`triton.autotune` on a GPU; the first config only under the interpreter (no driver to time with)."""
    return triton.autotune(configs=configs[:1] if INTERPRET else configs, key=key, **kwargs)


def check_device(*tensors: torch.Tensor) -> None:
    """All tensors on one device; CPU tensors only under the interpreter; no bf16 math there."""
    devices = {t.device for t in tensors}
    assert len(devices) == 1, f"tensors on several devices: {devices}"
    dev = devices.pop()
    if dev.type == "cpu":
        assert INTERPRET, "CPU tensors need TRITON_INTERPRET=1 set before kernels are imported"
        assert all(t.dtype != torch.bfloat16 for t in tensors), (
            "bf16 tl.dot is wrong under the Triton interpreter; use fp32/fp16 on CPU")


def check_last_dim_contiguous(**tensors: torch.Tensor) -> None:
    for name, t in tensors.items():
        assert t.stride(-1) == 1, f"{name} must be contiguous in its last dimension, strides {t.stride()}"


@triton.jit
def online_softmax_step(acc, m_i, l_i, s, qk_scale, v, PREC: tl.constexpr):
    """Fold one key tile into a running softmax (FlashAttention's update, base 2).

    acc [R, D] f32, m_i / l_i [R] f32 running max and sum, in the scaled (log2) domain; s [R, N] raw
    scores q.k (masked entries -inf); qk_scale = log2(e)/sqrt(d) > 0; v [N, D]. Every row needs one
    finite score in the tile. The scale is applied inside the exponent, s * qk_scale - m as one FMA,
    instead of scaling the whole tile first (one multiply less per score).
    """
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    p = tl.exp2(s * qk_scale - m_new[:, None])
    alpha = tl.exp2(m_i - m_new)
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PREC)
    return acc, m_new, l_i
