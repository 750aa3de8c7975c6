"""Text rotary kernel == its reference (fp32/fp16 on CPU, bf16 on GPU); reference == transformers' step."""
import pytest
import torch
from conftest import DEVICE, assert_close

from omnivideo.kernels.layers.text_rotary_reference import text_rotary_reference
from omnivideo.kernels.layers.text_rotary import text_rotary

TOL = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}
DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]


def projections(bsz, hq, hk, seq, dim, dtype, seed=0):
    """q, k as transformers makes them: the projection output [B, S, H*D] viewed [B, H, S, D]; cos/sin [B, S, D]."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(bsz, seq, hq * dim, generator=gen).to(DEVICE, dtype).view(bsz, seq, hq, dim).transpose(1, 2)
    k = torch.randn(bsz, seq, hk * dim, generator=gen).to(DEVICE, dtype).view(bsz, seq, hk, dim).transpose(1, 2)
    angle = torch.rand(bsz, seq, dim // 2, generator=gen) * 50
    emb = torch.cat([angle, angle], dim=-1)
    return q, k, emb.cos().to(DEVICE, dtype), emb.sin().to(DEVICE, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(1, 28, 4, 1, 128), (1, 28, 4, 5, 128), (2, 4, 1, 3, 48), (1, 7, 7, 33, 64),
                                   (3, 8, 2, 2, 16)], ids=lambda s: "B{}-Hq{}-Hk{}-S{}-D{}".format(*s))
def test_kernel_matches_reference(shape, dtype):
    q, k, cos, sin = projections(*shape, dtype)
    q2, k2 = text_rotary(q, k, cos, sin)
    rq, rk = text_rotary_reference(q, k, cos, sin)
    assert q2.stride() == q.stride() and k2.stride() == k.stride() and q2.dtype == dtype
    assert_close("q", q2, rq, rel_rms=TOL[dtype])
    assert_close("k", k2, rk, rel_rms=TOL[dtype])
    assert torch.equal(q, projections(*shape, dtype)[0])  # inputs untouched


def test_reference_matches_transformers_in_fp32():
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as hf

    q, k, cos, sin = projections(1, 28, 4, 5, 128, torch.float32)
    apply = getattr(hf, "apply_rotary_pos_emb", None)
    if apply is None:  # transformers < 5.2x: the multimodal variant, with the three position axes
        def apply(q, k, cos, sin):
            return hf.apply_multimodal_rotary_pos_emb(q, k, cos[None].expand(3, -1, -1, -1),
                                                      sin[None].expand(3, -1, -1, -1), [16, 24, 24])
    hq, hk = apply(q, k, cos, sin)
    rq, rk = text_rotary_reference(q, k, cos, sin)
    assert_close("q", rq, hq, rel_rms=1e-6)
    assert_close("k", rk, hk, rel_rms=1e-6)


def test_launcher_rejects_bad_shapes():
    q, k, cos, sin = projections(1, 4, 2, 3, 32, torch.float32)
    with pytest.raises(AssertionError, match="cos, sin"):
        text_rotary(q, k, cos[:, :2], sin[:, :2])
    with pytest.raises(AssertionError, match="dtypes"):
        text_rotary(q, k.double(), cos, sin)
    with pytest.raises(AssertionError, match="last dim"):
        text_rotary(q, torch.randn(1, 2, 3, 64, device=DEVICE)[..., ::2], cos, sin)  # k strided in D
