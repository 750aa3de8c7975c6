"""Triton `rotary_qk` against its reference, and the reference against transformers' `apply_rotary_pos_emb_vision`."""
import pytest
import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import apply_rotary_pos_emb_vision
from transformers.models.qwen3_vl.modeling_qwen3_vl import apply_rotary_pos_emb_vision as qwen3_rotary

from conftest import DEVICE, assert_close
from omnivideo.kernels.layers.vision_rotary_reference import rotary_qk_reference
from omnivideo.kernels.layers.vision_rotary import rotary_qk

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
TOL = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 4e-3}
# (N, H, D): the 7B's head dim 80 (not a power of two), Qwen3-VL's 72 (1152 / 16), the tiny model's 16,
# 128, a tiny even 6
SHAPES = [(1, 1, 80), (37, 3, 80), (29, 3, 72), (5, 2, 16), (33, 1, 128), (70, 4, 6)]


def _inputs(n: int, h: int, d: int, dtype: torch.dtype, seed: int = 0, device=DEVICE):
    """qkv [N, 3*H*D] as the projection writes it; cos / sin [N, D] fp32 with transformers' layout
    (the angles of the first half repeated in the second)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    qkv = torch.randn(n, 3 * h * d, generator=gen).to(device, dtype)
    angles = 10 * torch.rand(n, d // 2, generator=gen)
    angles = torch.cat([angles, angles], dim=-1)
    return qkv, angles.cos().to(device), angles.sin().to(device)


@pytest.mark.parametrize("family", ["qwen2_5_vl", "qwen3_vl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_reference_is_transformers_rotary_bit_for_bit(dtype, family):
    n, h, d = (41, 16, 80) if family == "qwen2_5_vl" else (41, 16, 72)
    qkv, cos, sin = _inputs(n, h, d, dtype, device="cpu")
    # transformers' attention: views of the fused projection, then its rotary function (Qwen3-VL's tower
    # has its own copy of the function; its cos / sin are [N, D] too, h and w angles side by side)
    q, k, _ = qkv.reshape(n, 3, h, -1).permute(1, 0, 2, 3).unbind(0)
    rotary = apply_rotary_pos_emb_vision if family == "qwen2_5_vl" else qwen3_rotary
    expected_q, expected_k = rotary(q, k, cos, sin)
    actual_q, actual_k = rotary_qk_reference(qkv, cos, sin, h)
    assert torch.equal(actual_q, expected_q) and torch.equal(actual_k, expected_k)
    assert actual_q.is_contiguous() and actual_k.is_contiguous()


def test_reference_follows_rotate_half_by_hand():
    """out[d] = x[d] cos[d] + (-x[d + D/2] if d < D/2 else x[d - D/2]) sin[d], written out per column."""
    n, h, d = 3, 2, 10
    qkv, _, _ = _inputs(n, h, d, torch.float32, device="cpu")
    cos, sin = torch.rand(n, d), torch.rand(n, d)        # any values: the formula does not assume repeats
    q, k = rotary_qk_reference(qkv, cos, sin, h)
    x = qkv.view(n, 3, h, d)
    for part, out in ((0, q), (1, k)):
        for j in range(d):
            partner = -x[:, part, :, j + d // 2] if j < d // 2 else x[:, part, :, j - d // 2]
            expected = x[:, part, :, j] * cos[:, j, None] + partner * sin[:, j, None]
            assert torch.allclose(out[:, :, j], expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(shape, dtype):
    n, h, d = shape
    qkv, cos, sin = _inputs(n, h, d, dtype, seed=d)
    q, k = rotary_qk(qkv, cos, sin, h)
    q_ref, k_ref = rotary_qk_reference(qkv, cos, sin, h)
    assert q.shape == k.shape == (n, h, d) and q.dtype == dtype and q.is_contiguous() and k.is_contiguous()
    assert_close("q", q, q_ref, rel_rms=TOL[dtype])
    assert_close("k", k, k_ref, rel_rms=TOL[dtype])


def test_strided_tables_identity_and_empty_input():
    """cos / sin rows of a wider table are read in place; cos 1, sin 0 copies q and k out unchanged."""
    n, h, d = 9, 2, 80
    qkv, cos, sin = _inputs(n, h, d, torch.float32, seed=5)
    wide_cos, wide_sin = torch.cat([cos, cos], 1)[:, :d], torch.cat([sin, sin], 1)[:, :d]
    assert not wide_cos.is_contiguous()
    q, k = rotary_qk(qkv, wide_cos, wide_sin, h)
    q_ref, k_ref = rotary_qk_reference(qkv, cos, sin, h)
    assert_close("q", q, q_ref, rel_rms=1e-6)
    assert_close("k", k, k_ref, rel_rms=1e-6)
    q, k = rotary_qk(qkv, torch.ones_like(cos), torch.zeros_like(sin), h)
    parts = qkv.view(n, 3, h, d)
    assert torch.equal(q, parts[:, 0]) and torch.equal(k, parts[:, 1])
    q, k = rotary_qk(qkv[:0], cos[:0], sin[:0], h)
    assert q.shape == (0, h, d)


def test_launcher_checks_inputs():
    qkv, cos, sin = _inputs(4, 2, 16, torch.float32)
    with pytest.raises(AssertionError, match="contiguous"):
        rotary_qk(torch.cat([qkv, qkv], 1)[:, :96], cos, sin, 2)
    with pytest.raises(AssertionError, match="float32"):
        rotary_qk(qkv, cos.half(), sin.half(), 2)
    with pytest.raises(AssertionError, match="3 \\* 3"):
        rotary_qk(qkv, cos, sin, 3)
    with pytest.raises(AssertionError, match="cos, sin"):
        rotary_qk(qkv, cos[:3], sin[:3], 2)
    with pytest.raises(AssertionError, match="even"):
        rotary_qk(qkv[:, :90].contiguous(), cos[:, :15].contiguous(), sin[:, :15].contiguous(), 2)
    if DEVICE == "cpu":
        with pytest.raises(AssertionError, match="bf16"):
            rotary_qk(qkv.bfloat16(), cos, sin, 2)


@pytest.mark.gpu
@pytest.mark.parametrize("d", [80, 72], ids=["qwen2.5-vl-7b", "qwen3-vl-8b"])
def test_vision_scale_bf16_against_reference(d):
    """The 7B / 8B towers' attention in bf16: 4096 patches, 16 heads of 80 / 72."""
    qkv, cos, sin = _inputs(4096, 16, d, torch.bfloat16, seed=12)
    q, k = rotary_qk(qkv, cos, sin, 16)
    q_ref, k_ref = rotary_qk_reference(qkv, cos, sin, 16)
    assert_close("q", q, q_ref, rel_rms=4e-3)
    assert_close("k", k, k_ref, rel_rms=4e-3)
