"""Triton `silu_mul` against its reference, and the reference against transformers' gated MLP activation."""
import pytest
import torch
from transformers import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLMLP

from conftest import DEVICE, assert_close
from omnivideo.kernels.layers.silu_mul_reference import silu_mul_reference
from omnivideo.kernels.layers.silu_mul import silu_mul

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
TOL = {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 4e-3}
# widths I: one unit, the tiny model's, the 7B's 3420 and its padded 3456, one past a tile
SHAPES = [(1, 1), (7, 64), (33, 342), (3, 3420), (2, 3456), (5, 1025)]


def _gate_up(n: int, i: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return (4 * torch.randn(n, 2 * i, generator=gen)).to(DEVICE, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_reference_is_transformers_mlp_activation_bit_for_bit(dtype):
    """transformers' own MLP pieces: act_fn(gate_proj(x)) * up_proj(x), on one concatenated gate/up output."""
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(hidden_size=64, intermediate_size=96, hidden_act="silu")
    mlp = Qwen2_5_VLMLP(config, bias=True).to(dtype)
    x = torch.randn(37, 64).to(dtype)
    with torch.no_grad():
        gate, up = mlp.gate_proj(x), mlp.up_proj(x)
        expected = mlp.act_fn(gate) * up
    assert torch.equal(silu_mul_reference(torch.cat([gate, up], dim=-1)), expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_matches_reference(shape, dtype):
    gate_up = _gate_up(*shape, dtype, seed=shape[1])
    out = silu_mul(gate_up)
    assert out.dtype == dtype and out.shape == (shape[0], shape[1]) and out.is_contiguous()
    assert_close("out", out, silu_mul_reference(gate_up), rel_rms=TOL[dtype])


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")    # the interpreter's numpy: exp(200) = inf
def test_strided_rows_and_extremes():
    """Rows of a wider buffer are read in place; large negative gates give 0, large positive ones x * up."""
    buffer = _gate_up(6, 100, torch.float32, seed=4)
    gate_up = buffer[:, 10:170]                         # [6, 160] with row stride 200: I = 80
    assert_close("strided", silu_mul(gate_up), silu_mul_reference(gate_up), rel_rms=1e-6)
    extremes = torch.tensor([[-200.0, 0.0, 60.0, 2.0, 3.0, -5.0]], device=DEVICE)
    out = silu_mul(extremes)
    assert out[0, 0].item() == 0.0 and out[0, 1].item() == 0.0 and out[0, 2].item() == pytest.approx(-300.0)
    assert silu_mul(extremes[:0]).shape == (0, 3)


def test_launcher_checks_inputs():
    gate_up = _gate_up(4, 8, torch.float32)
    with pytest.raises(AssertionError, match="even"):
        silu_mul(gate_up[:, :15])
    with pytest.raises(AssertionError, match="contiguous"):
        silu_mul(gate_up.t().contiguous().t())
    with pytest.raises(AssertionError, match="fp16/bf16/fp32"):
        silu_mul(gate_up.double())
    if DEVICE == "cpu":
        with pytest.raises(AssertionError, match="bf16"):
            silu_mul(gate_up.bfloat16())


@pytest.mark.gpu
def test_vision_scale_bf16_against_reference():
    """The 7B tower's padded MLP in bf16: 4096 patches, I = 3456."""
    gate_up = _gate_up(4096, 3456, torch.bfloat16, seed=8)
    assert_close("out", silu_mul(gate_up), silu_mul_reference(gate_up), rel_rms=4e-3)
