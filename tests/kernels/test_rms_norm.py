"""Triton `rms_norm` / `add_rms_norm` against their reference, and the reference against transformers' RMSNorm."""
import pytest
import torch
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRMSNorm

from conftest import DEVICE, assert_close
from omnivideo.kernels.layers.rms_norm_reference import add_rms_norm_reference, rms_norm_reference
from omnivideo.kernels.layers.rms_norm import MAX_C, add_rms_norm, rms_norm

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
# fp32 statistics are summed in another order than torch's mean: a rounding flip of the output now and then
TOL = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 4e-3}
# widths: the vision tower's 1280, the 7B text model's decode row (3584), head-dim-like 80, tiny ones, odd,
# the largest tile
SHAPES = [(1, 1280), (1, 3584), (7, 80), (33, 1), (5, 333), (3, MAX_C)]


def _inputs(n: int, c: int, dtype: torch.dtype, seed: int = 0, device=DEVICE):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = (3 * torch.randn(n, c, generator=gen)).to(device, dtype)
    delta = torch.randn(n, c, generator=gen).to(device, dtype)
    weight = (1 + 0.5 * torch.randn(c, generator=gen)).to(device, dtype)
    return x, delta, weight


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_reference_is_transformers_rmsnorm_bit_for_bit(dtype):
    norm = Qwen2_5_VLRMSNorm(1280, eps=1e-6).to(dtype)
    x, delta, weight = _inputs(65, 1280, dtype, device="cpu")
    with torch.no_grad():
        norm.weight.copy_(weight)
        expected_r = x + delta                       # the vision block's residual add
        expected = norm(expected_r)
    r, y = add_rms_norm_reference(x, delta, norm.weight, norm.variance_epsilon)
    assert torch.equal(r, expected_r) and torch.equal(y, expected)
    assert torch.equal(rms_norm_reference(x, norm.weight, 1e-6), norm(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rms_norm_matches_reference(shape, dtype):
    x, _, weight = _inputs(*shape, dtype, seed=shape[1])
    y = rms_norm(x, weight, 1e-6)
    assert y.dtype == dtype and y.shape == x.shape and y.is_contiguous()
    assert_close("y", y, rms_norm_reference(x, weight, 1e-6), rel_rms=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_add_rms_norm_matches_reference(shape, dtype):
    x, delta, weight = _inputs(*shape, dtype, seed=1 + shape[1])
    x0, d0 = x.clone(), delta.clone()
    r, y = add_rms_norm(x, delta, weight, 1e-5)
    r_ref, y_ref = add_rms_norm_reference(x, delta, weight, 1e-5)
    assert torch.equal(r, r_ref), "the residual sum is one rounded add, as transformers'"
    assert_close("y", y, y_ref, rel_rms=TOL[dtype])
    assert torch.equal(x, x0) and torch.equal(delta, d0), "inputs are not modified"


def test_strided_rows_and_empty_input():
    """Rows of a wider buffer (a column slice) are read in place; N = 0 gives an empty result."""
    big, delta, weight = _inputs(9, 200, torch.float32, seed=3)
    x = big[:, 20:100]
    assert not x.is_contiguous()
    assert_close("y", rms_norm(x, weight[:80].contiguous(), 1e-6), rms_norm_reference(x, weight[:80], 1e-6),
                 rel_rms=1e-6)
    r, y = add_rms_norm(x, delta[:, :80], weight[:80].contiguous(), 1e-6)
    assert torch.equal(r, x + delta[:, :80])
    assert rms_norm(big[:0], weight, 1e-6).shape == (0, 200)


def test_eps_and_scale():
    """Rows that differ only by a factor normalize alike; a zero row gives zeros (eps keeps it finite)."""
    x = torch.randn(1, 96, device=DEVICE).repeat(3, 1) * torch.tensor([[1.0], [10.0], [0.0]], device=DEVICE)
    y = rms_norm(x, torch.ones(96, device=DEVICE), 1e-6)
    assert_close("scaled", y[1], y[0], rel_rms=1e-6)
    assert torch.equal(y[2], torch.zeros(96, device=DEVICE))


def test_launcher_checks_inputs():
    x, delta, weight = _inputs(4, 64, torch.float32)
    with pytest.raises(AssertionError, match="contiguous"):
        rms_norm(x.t().contiguous().t(), weight, 1e-6)
    with pytest.raises(AssertionError, match="weight"):
        rms_norm(x, weight.half(), 1e-6)
    with pytest.raises(AssertionError, match="weight"):
        rms_norm(x, weight[:32], 1e-6)
    with pytest.raises(AssertionError, match="delta"):
        add_rms_norm(x, delta[:2], weight, 1e-6)
    with pytest.raises(AssertionError, match="C must be"):
        rms_norm(torch.zeros(1, MAX_C + 1, device=DEVICE), torch.ones(MAX_C + 1, device=DEVICE), 1e-6)
    with pytest.raises(AssertionError, match="fp16/bf16/fp32"):
        rms_norm(x.double(), weight.double(), 1e-6)
    if DEVICE == "cpu":
        with pytest.raises(AssertionError, match="bf16"):
            rms_norm(x.bfloat16(), weight.bfloat16(), 1e-6)


@pytest.mark.gpu
def test_vision_scale_bf16_against_reference():
    """The 7B tower's shape in bf16: 4096 patches of width 1280, both kernels."""
    x, delta, weight = _inputs(4096, 1280, torch.bfloat16, seed=9)
    assert_close("rms_norm", rms_norm(x, weight, 1e-6), rms_norm_reference(x, weight, 1e-6), rel_rms=4e-3)
    r, y = add_rms_norm(x, delta, weight, 1e-6)
    r_ref, y_ref = add_rms_norm_reference(x, delta, weight, 1e-6)
    assert torch.equal(r, r_ref)
    assert_close("add_rms_norm", y, y_ref, rel_rms=4e-3)
