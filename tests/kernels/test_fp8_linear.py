"""FP8 prefill linears: the row quantization kernel against its reference, the reference against a
straightforward nearest-value rounding, the emulated product's error against bf16, and (GPU) `_scaled_mm`
against the emulation."""
import pytest
import torch

from conftest import DEVICE, assert_close
from omnivideo.kernels import backend
from omnivideo.kernels.fp8.fp8_matmul import _scaled_mm_product, fp8_linear, fp8_matmul, scaled_mm_fits
from omnivideo.kernels.fp8.reference import (E4M3, E4M3_MAX, FP8Rows, dequantize_rows_reference,
                                             fp8_linear_reference, fp8_matmul_reference, quantize_rows_reference)
from omnivideo.kernels.fp8.row_quant import fp8_supported, quantize_rows

# every finite float8_e4m3fn value, ascending (the table a plain nearest-value rounding searches)
_BYTES = torch.arange(256, dtype=torch.uint8).view(E4M3).float()
E4M3_VALUES = torch.unique(_BYTES[torch.isfinite(_BYTES)])


def nearest_e4m3(v: torch.Tensor) -> torch.Tensor:
    """The straightforward definition: the nearest e4m3 value, ties to the one with an even last mantissa bit."""
    table = E4M3_VALUES.double()
    dist = (v.double()[..., None] - table).abs()
    best = dist.min(dim=-1, keepdim=True).values
    tied = dist == best
    even = (table.to(E4M3).view(torch.uint8) & 1) == 0
    choice = torch.where(tied.sum(-1) > 1, (tied & even).double().argmax(-1), tied.double().argmax(-1))
    return table[choice].float()


def _matrix(rows: int, cols: int, seed: int, dtype=torch.float32, outliers: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(rows, cols, generator=gen) * torch.exp(torch.randn(rows, 1, generator=gen))
    if outliers:   # LLM activations: a few channels far above the rest (what per-token scales must survive)
        t[:, :: max(1, cols // 4)] *= 40
    return t.to(dtype)


def test_e4m3_cast_is_the_nearest_value_ties_to_even():
    """The reference's rounding (torch's cast) equals the table definition, on every midpoint and around it."""
    mids = (E4M3_VALUES[1:] + E4M3_VALUES[:-1]) / 2
    v = torch.cat([E4M3_VALUES, mids, mids * (1 + 2**-20), mids * (1 - 2**-20), torch.linspace(-448, 448, 4001)])
    assert torch.equal(v.to(E4M3).float(), nearest_e4m3(v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("shape", [(1, 16), (5, 100), (3, 3000), (2, 4096)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_row_quant_kernel_matches_reference_bit_for_bit(shape, dtype):
    """Under the interpreter on CPU: every byte and every scale (K over one 2048 block too)."""
    t = _matrix(*shape, seed=shape[1], dtype=dtype)
    t[0, :7] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 2.0**-12, 3 * 2.0**-11, -(2.0**-7)])  # zeros, subnormals
    with backend("triton"):
        got = quantize_rows(t)
    want = quantize_rows_reference(t)
    assert torch.equal(got.data.view(torch.uint8), want.data.view(torch.uint8))
    assert torch.equal(got.scale, want.scale)


def test_row_quant_kernel_rounds_every_midpoint_to_even():
    """Rows whose scaled values are the e4m3 values, their midpoints and neighbours: the kernel's explicit
    rounding (not the interpreter's cast) decides, and must give the table's nearest value."""
    mids = (E4M3_VALUES[1:] + E4M3_VALUES[:-1]) / 2
    row = torch.cat([torch.tensor([448.0]), E4M3_VALUES, mids, mids * (1 + 2**-20), mids * (1 - 2**-20)])
    with backend("triton"):
        got = quantize_rows(row[None, :].contiguous())
    assert got.scale.item() == 1.0   # amax 448: the values are not rescaled
    assert torch.equal(got.data.float()[0], nearest_e4m3(row))


def test_reference_quantization_bounds():
    """Largest entry of a row -> +-448 exactly; relative error <= 2^-4 in the normal range, absolute
    <= 2^-10 (in the scaled domain) below it; a zero row stays zero."""
    t = _matrix(6, 257, seed=3)
    t[5] = 0
    rows = quantize_rows_reference(t)
    assert rows.data.float()[:5].abs().amax(dim=1).eq(E4M3_MAX).all()
    scaled = t / rows.scale[:, None]
    err = (rows.data.float() - scaled).abs()
    normal = scaled.abs() >= 2**-6
    assert (err[normal] <= 2**-4 * scaled.abs()[normal] * (1 + 1e-6)).all()
    assert (err[~normal] <= 2**-10 + 1e-12).all()
    assert rows.data[5].float().eq(0).all() and torch.isfinite(dequantize_rows_reference(rows)).all()


def test_emulated_product_equals_the_exact_sum_of_its_fp8_values():
    """fp8_matmul_reference is the product of the dequantized operands: fp64 sums agree to fp32 rounding."""
    a, w = quantize_rows_reference(_matrix(9, 320, seed=1)), quantize_rows_reference(_matrix(48, 320, seed=2))
    bias = torch.randn(48)
    got = fp8_matmul_reference(a, w, bias, torch.float32)
    exact = (a.data.double() * a.scale.double()[:, None]) @ (w.data.double() * w.scale.double()[:, None]).t()
    assert_close("fp8 product", got, exact + bias.double(), rel_rms=1e-6)


def test_fp8_error_is_bounded_against_bf16():
    """On LLM-like activations (outlier channels) the FP8 linear's error stays a few percent, within 16x of
    bf16's (the format has 3 mantissa bits to bf16's 7; measured: 0.030 against 0.0028)."""
    x, weight = _matrix(64, 1024, seed=5, outliers=True), 0.02 * _matrix(256, 1024, seed=6)
    exact = x.double() @ weight.double().t()

    def rel(y):
        return ((y.double() - exact).pow(2).mean().sqrt() / exact.pow(2).mean().sqrt()).item()

    bf16 = rel(torch.nn.functional.linear(x.bfloat16(), weight.bfloat16()).float())
    fp8 = rel(fp8_linear_reference(x, quantize_rows_reference(weight)))
    assert fp8 < 0.04, fp8
    assert fp8 < 16 * bf16, (fp8, bf16)


def test_launcher_runs_the_reference_off_the_gpu_and_checks_inputs():
    x, w = _matrix(7, 64, seed=8), quantize_rows_reference(_matrix(32, 64, seed=9))
    bias = torch.randn(32)
    assert not fp8_supported("cpu")
    assert torch.equal(fp8_linear(x, w, bias), fp8_linear_reference(x, w, bias))
    with pytest.raises(AssertionError, match="but w is"):
        fp8_linear(x[:, :48].contiguous(), w)
    with pytest.raises(AssertionError, match="bias"):
        fp8_linear(x, w, torch.randn(31))
    with pytest.raises(AssertionError, match="scale"):
        FP8Rows(w.data, w.scale.double())
    assert scaled_mm_fits(3584, 512) and not scaled_mm_fits(3584, 520)


def test_scaled_mm_call_convention_on_cpu():
    """The tensor-core path's call (layouts, scale shapes, bias after rounding) run through torch's CPU
    `_scaled_mm` (torch >= 2.6 has one): the same numbers as the emulation up to bf16 rounding."""
    a = quantize_rows_reference(_matrix(33, 128, seed=10))
    w = quantize_rows_reference(_matrix(48, 128, seed=11))
    bias = torch.randn(48).bfloat16()
    try:
        got = _scaled_mm_product(a, w, bias)
    except (RuntimeError, NotImplementedError) as e:
        pytest.skip(f"no CPU _scaled_mm in this torch: {e}")
    assert got.dtype == torch.bfloat16 and got.shape == (33, 48)
    assert_close("cpu _scaled_mm", got, fp8_matmul_reference(a, w, bias, torch.bfloat16), rel_rms=4e-3)


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE == "cpu" or not fp8_supported(DEVICE), reason="needs FP8 tensor cores (sm_89+)")
def test_row_quant_kernel_on_gpu_matches_reference():
    t = _matrix(300, 3584, seed=12, dtype=torch.bfloat16, outliers=True).to(DEVICE)
    got, want = quantize_rows(t), quantize_rows_reference(t)
    assert_close("scale", got.scale, want.scale, rel_rms=1e-6)
    same = (got.data.view(torch.uint8) == want.data.view(torch.uint8)).float().mean().item()
    assert same >= 0.999, same   # an approximate fp32 division may move a value across a rounding boundary


@pytest.mark.gpu
@pytest.mark.skipif(DEVICE == "cpu" or not fp8_supported(DEVICE), reason="needs FP8 tensor cores (sm_89+)")
@pytest.mark.parametrize("n, k", [(3584, 3584), (512, 3584), (18944, 3584), (3584, 18944), (256, 256)])
def test_scaled_mm_matches_the_emulation_on_gpu(n, k):
    """The 7B's projection shapes (and the synth checkpoint's), 300 tokens: bf16 rounding apart."""
    x = _matrix(300, k, seed=n, dtype=torch.bfloat16, outliers=True).to(DEVICE)
    w = quantize_rows(0.02 * _matrix(n, k, seed=k, dtype=torch.bfloat16).to(DEVICE))
    bias = torch.randn(n, device=DEVICE).bfloat16()
    a = quantize_rows(x)
    got = fp8_matmul(a, w, bias, torch.bfloat16)
    assert got.dtype == torch.bfloat16 and got.shape == (300, n)
    assert_close("_scaled_mm", got, fp8_matmul_reference(a, w, bias, torch.bfloat16), rel_rms=4e-3)
    with backend("reference"):   # the switch sends the same call to the emulation
        assert_close("switch", fp8_linear(x, w, bias), got, rel_rms=4e-3)
