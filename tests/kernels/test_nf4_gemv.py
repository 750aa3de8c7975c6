"""NF4 GEMV: reference == bitsandbytes' dequantize_4bit; Triton kernel == reference (and bnb's matmul)."""
from dataclasses import replace

import pytest
import torch
from conftest import DEVICE, assert_close

import bitsandbytes.functional as bnbf
from omnivideo.kernels.nf4.nf4_gemv import GemvPlan, default_plan, nf4_gemv
from omnivideo.kernels.nf4.reference import NF4Weight, dequantize_nf4_reference, nf4_matmul_reference

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]

# (M, N, K, double quantization, blocksize, plan or None for the default). 7B shapes scaled down by 8
# (3584 -> 448, 512 -> 64, 18944 -> 2368); K = 2368 and 192 are not multiples of the K tile.
CASES = [
    (1, 448, 448, True, 64, None),  # q/o projection
    (4, 64, 448, True, 64, None),  # k/v projection: split-K from the default plan
    (2, 296, 2368, True, 64, None),  # down projection: N not a multiple of 16, K not of 512
    (3, 100, 192, False, 64, GemvPlan(block_n=8, block_k=128, split_k=3)),  # fp32 absmax, odd split
    (1, 40, 4096, True, 64, GemvPlan(block_n=16, block_k=1024, split_k=2)),  # 10 absmax2 groups
    (2, 48, 512, True, 128, GemvPlan(block_n=32, block_k=256, split_k=1)),  # blocksize 128
]


def quantize(n: int, k: int, nested: bool = True, blocksize: int = 64, seed: int = 0):
    """A random W [N, K] quantized by bitsandbytes (CPU), as (NF4Weight, bnb packed, bnb QuantState)."""
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed)) * 0.05
    packed, state = bnbf.quantize_4bit(w, blocksize=blocksize, compress_statistics=nested, quant_type="nf4")
    extra = {}
    if nested:
        extra = dict(absmax_code=state.state2.code, absmax_scale=state.state2.absmax, offset=state.offset,
                     absmax_blocksize=state.state2.blocksize)
    return NF4Weight(packed, state.absmax, (n, k), state.code, blocksize, **extra), packed, state


def to_device(w: NF4Weight) -> NF4Weight:
    move = {f: getattr(w, f) for f in ("packed", "absmax", "code", "absmax_code", "absmax_scale", "offset")}
    return NF4Weight(**{f: t if t is None else t.to(DEVICE) for f, t in move.items()}, shape=w.shape,
                     blocksize=w.blocksize, absmax_blocksize=w.absmax_blocksize)


@pytest.mark.parametrize("n,k,nested,blocksize", [(448, 448, True, 64), (33, 130, True, 64), (7, 9, True, 64),
                                                  (300, 576, False, 64), (64, 1024, True, 256)])
def test_reference_dequantize_equals_bitsandbytes(n, k, nested, blocksize):
    """Odd N*K and K % blocksize != 0 too: the reference follows bnb's flat layout everywhere."""
    w, packed, state = quantize(n, k, nested, blocksize)
    assert torch.equal(dequantize_nf4_reference(w), bnbf.dequantize_4bit(packed, state).float())


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "M{}-N{}-K{}-nested{}-bs{}-{}".format(
    *c[:5], "default" if c[5] is None else f"BN{c[5].block_n}-BK{c[5].block_k}-S{c[5].split_k}"))
def test_kernel_matches_reference(case, dtype):
    m, n, k, nested, blocksize, plan = case
    w = to_device(quantize(n, k, nested, blocksize)[0])
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(m, k, generator=gen).to(DEVICE, dtype)
    bias = torch.randn(n, generator=gen).to(DEVICE, dtype)
    for b in (None, bias):
        actual = nf4_gemv(x, w, b, plan)
        assert actual.dtype == dtype and actual.shape == (m, n)
        assert_close(f"y (bias {b is not None})", actual, nf4_matmul_reference(x, w, b), rel_rms=TOL[dtype])


def test_kernel_matches_bitsandbytes_matmul():
    """Against bnb's own dequantization (not our reference) on a 7B-like shape with a strided x."""
    w, packed, state = quantize(448, 2368, seed=3)
    x_wide = torch.randn(3, 2 * 2368, generator=torch.Generator().manual_seed(2))
    x = x_wide[:, :2368]  # rows 2K apart: the launcher takes any row stride
    expected = x @ bnbf.dequantize_4bit(packed, state).float().t()
    assert_close("y", nf4_gemv(x.to(DEVICE), to_device(w)).cpu(), expected, rel_rms=1e-5)


def test_split_k_changes_nothing_but_rounding():
    w = to_device(quantize(64, 2048, seed=4)[0])
    x = torch.randn(2, 2048, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    whole = nf4_gemv(x, w, plan=GemvPlan(block_n=16, block_k=512, split_k=1))
    for split in (2, 3, 4):
        assert_close(f"split {split}", nf4_gemv(x, w, plan=GemvPlan(block_n=16, block_k=512, split_k=split)),
                     whole, rel_rms=1e-6)


def test_default_plan_splits_only_narrow_matrices():
    # the 7B's shapes on an H100 (132 SMs)
    assert default_plan(1, 18944, 3584, 64, 132).split_k == 1
    assert default_plan(1, 512, 3584, 64, 132).split_k == 4
    assert default_plan(1, 3584, 3584, 64, 132).split_k == 2
    assert default_plan(1, 3584, 18944, 64, 132).split_k == 2
    assert default_plan(1, 64, 64, 64, 132) == GemvPlan(block_n=8, block_k=64, split_k=1)


def test_launcher_rejects_what_it_cannot_compute():
    w = to_device(quantize(64, 192)[0])
    ok = torch.randn(1, 192, device=DEVICE)
    with pytest.raises(AssertionError, match="1..4 rows"):
        nf4_gemv(torch.randn(5, 192, device=DEVICE), w)
    with pytest.raises(AssertionError, match=r"x must be \[M, 192\]"):
        nf4_gemv(torch.randn(1, 128, device=DEVICE), w)
    with pytest.raises(AssertionError, match="contiguous in K"):
        nf4_gemv(torch.randn(1, 384, device=DEVICE)[:, ::2], w)
    with pytest.raises(AssertionError, match="dtype"):
        nf4_gemv(ok.double(), w)
    with pytest.raises(AssertionError, match="bias"):
        nf4_gemv(ok, w, torch.zeros(63, device=DEVICE))
    odd = to_device(quantize(8, 96)[0])  # K = 96: a quant block straddles two rows
    with pytest.raises(AssertionError, match="multiple of the blocksize"):
        nf4_gemv(torch.randn(1, 96, device=DEVICE), odd)
    with pytest.raises(ValueError, match="power of two"):
        GemvPlan(block_n=12)


def test_weight_fields_are_validated():
    w, _, _ = quantize(16, 64)
    with pytest.raises(ValueError, match="packed"):
        NF4Weight(w.packed[:-1], w.absmax, w.shape, w.code, absmax_code=w.absmax_code,
                  absmax_scale=w.absmax_scale, offset=w.offset)
    with pytest.raises(ValueError, match="absmax_code"):
        NF4Weight(w.packed, w.absmax, w.shape, w.code)


@pytest.mark.gpu
def test_bf16_7b_shapes_match_reference():
    """The 7B's real shapes on the GPU, bf16, default plans (split-K for the narrow ones)."""
    for n, k in [(3584, 3584), (512, 3584), (18944, 3584), (3584, 18944)]:
        w = to_device(quantize(n, k, seed=n + k)[0])
        for m in (1, 4):
            x = torch.randn(m, k, device=DEVICE, dtype=torch.bfloat16)
            assert_close(f"{n}x{k} M{m}", nf4_gemv(x, w), nf4_matmul_reference(x, w), rel_rms=1e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("case", CASES[:4], ids=lambda c: "M{}-N{}-K{}".format(*c[:3]))
def test_register_lookup_matches_reference_and_gather(case, dtype):
    """The PTX lookup (fp16-rounded codes) against the reference and against the exact gather path."""
    m, n, k, nested, blocksize, plan = case
    w = to_device(quantize(n, k, nested, blocksize, seed=7)[0])
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(8)).to(DEVICE, dtype)
    ours = nf4_gemv(x, w, plan=plan, lut=True)
    tol = {torch.float32: 1e-3, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    assert_close("lut vs reference", ours, nf4_matmul_reference(x, w), rel_rms=tol)
    assert_close("lut vs gather", ours, nf4_gemv(x, w, plan=plan, lut=False), rel_rms=tol)


def test_register_lookup_is_refused_on_cpu():
    w = quantize(16, 64)[0]
    with pytest.raises(AssertionError, match="CUDA only"):
        nf4_gemv(torch.randn(1, 64), w, lut=True)


# -- variant rows2: two row tiles per program share x (M = 1) ------------------------------------------
ROWS2 = [(n, k, nested, bs, plan) for m, n, k, nested, bs, plan in CASES] + [(300, 576, True, 64, None)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", ROWS2, ids=lambda c: "N{}-K{}-nested{}-bs{}-{}".format(
    *c[:4], "default" if c[4] is None else f"BN{c[4].block_n}-BK{c[4].block_k}-S{c[4].split_k}"))
def test_rows2_matches_reference_and_base(case, dtype):
    """Odd N (the second tile partly or wholly past N), split K, fp32 absmax, blocksize 128."""
    n, k, nested, blocksize, plan = case
    w = to_device(quantize(n, k, nested, blocksize, seed=11)[0])
    gen = torch.Generator().manual_seed(12)
    x = torch.randn(1, k, generator=gen).to(DEVICE, dtype)
    bias = torch.randn(n, generator=gen).to(DEVICE, dtype)
    base = plan or default_plan(1, n, k, blocksize, 4)
    rows2 = replace(base, variant="rows2")
    for b in (None, bias):
        actual = nf4_gemv(x, w, b, rows2)
        assert actual.dtype == dtype and actual.shape == (1, n)
        assert_close("rows2 vs reference", actual, nf4_matmul_reference(x, w, b), rel_rms=TOL[dtype])
        assert_close("rows2 vs base", actual, nf4_gemv(x, w, b, base), rel_rms=1e-6)


def test_rows2_serves_one_row_only_and_the_variant_is_validated(monkeypatch):
    w = to_device(quantize(64, 448)[0])
    x = torch.randn(3, 448, generator=torch.Generator().manual_seed(13)).to(DEVICE)
    plan = GemvPlan(variant="rows2", block_k=64)
    # three rows of x take the base kernel, with the same result
    assert_close("M3", nf4_gemv(x, w, plan=plan), nf4_gemv(x, w, plan=replace(plan, variant="base")), rel_rms=0)
    with pytest.raises(ValueError, match="variant"):
        GemvPlan(variant="rows3")
    monkeypatch.setenv("OMNIVIDEO_NF4_VARIANT", "rows2")
    # the 7B's down projection on 132 SMs: 224 two-tile programs need split 4 for >= 4 programs per SM
    assert default_plan(1, 3584, 18944, 64, 132) == GemvPlan(split_k=4, variant="rows2")
    assert default_plan(2, 3584, 18944, 64, 132).split_k == 2  # M > 1: base tiles


@pytest.mark.gpu
def test_rows2_register_lookup_7b_shapes_bf16():
    """The fused 7B shapes of a decode step (q|k|v, o, gate|up, down), bf16, register lookup, default plans."""
    for n, k in [(4608, 3584), (3584, 3584), (37888, 3584), (3584, 18944)]:
        w = to_device(quantize(n, k, seed=n + k)[0])
        x = torch.randn(1, k, device=DEVICE, dtype=torch.bfloat16)
        plan = replace(default_plan(1, n, k, 64, torch.cuda.get_device_properties(0).multi_processor_count),
                       variant="rows2")
        ours = nf4_gemv(x, w, plan=plan)
        assert_close(f"{n}x{k}", ours, nf4_matmul_reference(x, w), rel_rms=1e-2)
        assert_close(f"{n}x{k} vs base", ours, nf4_gemv(x, w, plan=replace(plan, variant="base")), rel_rms=1e-3)
