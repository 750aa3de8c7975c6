"""Per-row FP8 e4m3 quantization in one kernel: a row's absolute maximum, then its values scaled, rounded, stored.

    rows = quantize_rows(x)      # x [R, K] fp32/fp16/bf16 -> FP8Rows(data e4m3 [R, K], scale fp32 [R])

Semantics: `omnivideo.kernels.fp8.reference.quantize_rows_reference`, bit for bit. Why a kernel: the
prefill quantizes every linear's input per token, and in eager PyTorch that is five or six full passes
over the activations (abs, amax, the fp32 upcast, the multiply, the clamp, the cast), which at 32K tokens
of the 7B would eat most of what the FP8 GEMM saves (docs/engine.md); here one program per row reads it
twice (the second read mostly from L2) and writes one byte per value.

The rounding to e4m3 is done in fp32 arithmetic (`_round_e4m3`) and the cast then only stores an exact
value: the Triton interpreter's own fp32 -> fp8 cast is wrong where rounding carries into the next binade
(124.8 came out as 64, not 128), and doing it explicitly gives the same bits on every backend.
"""
import functools

import torch
import triton
import triton.language as tl

from omnivideo.kernels import use_triton
from omnivideo.kernels.fp8.reference import E4M3, E4M3_MAX, MIN_AMAX, FP8Rows, quantize_rows_reference
from omnivideo.kernels.triton_support import check_device, check_last_dim_contiguous

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
MIN_CAPABILITY = (8, 9)   # FP8 tensor cores and fp8 conversions: Ada (sm_89), Hopper (sm_90) and later


def fp8_supported(device: torch.device | str) -> bool:
    """Whether `device` has FP8 tensor cores (compute capability >= 8.9) and this torch has `_scaled_mm`."""
    device = torch.device(device)
    if device.type != "cuda" or not hasattr(torch, "_scaled_mm") or not torch.cuda.is_available():
        return False
    return _capability(device.index if device.index is not None else torch.cuda.current_device()) >= MIN_CAPABILITY


@functools.cache
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)   # asked on every prefill linear: once per GPU is enough


@triton.jit
def _round_e4m3(v):
    """fp32 v with |v| <= 448 -> the nearest float8_e4m3fn value (ties to even), still in fp32."""
    bits = v.to(tl.int32, bitcast=True)
    # normal range: keep 3 of fp32's 23 mantissa bits, round half to even (a carry moves into the exponent)
    lsb = (bits >> 20) & 1
    normal = ((bits + 0x7FFFF + lsb) & -0x100000).to(tl.float32, bitcast=True)
    # below 2^-6 e4m3 is subnormal, a fixed step of 2^-9: 24576 = 1.5 * 2^14 has an fp32 ulp of 2^-9, so the
    # addition itself rounds to that step (half to even); the sign bit is put back (-0 stays -0)
    sub = tl.abs((v + 24576.0) - 24576.0)
    sub = tl.where(bits < 0, sub * -1.0, sub)   # not -sub: Triton negates as 0 - x, which loses -0
    return tl.where(tl.abs(v) < 0.015625, sub, normal)


@triton.jit(do_not_specialize=["K"])
def _row_quant_kernel(T, Q, S, K, s_t, s_q, MAX: tl.constexpr, AMAX_MIN: tl.constexpr, BLOCK_K: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_K)
    peak = tl.zeros([BLOCK_K], dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        v = tl.load(T + row * s_t + k0 + cols, mask=k0 + cols < K, other=0.0).to(tl.float32)
        peak = tl.maximum(peak, tl.abs(v))
    amax = tl.maximum(tl.max(peak, axis=0), AMAX_MIN)
    top = amax * 0.0 + MAX                   # 448 as a tensor: div_rn takes two
    inv = tl.math.div_rn(top, amax)          # IEEE division, as the reference (not an approximate one)
    for k0 in range(0, K, BLOCK_K):
        mask = k0 + cols < K
        v = tl.load(T + row * s_t + k0 + cols, mask=mask, other=0.0).to(tl.float32)
        q = _round_e4m3(tl.minimum(tl.maximum(v * inv, -MAX), MAX))
        tl.store(Q + row * s_q + k0 + cols, q.to(Q.dtype.element_ty), mask=mask)
    tl.store(S + row, tl.math.div_rn(amax, top))


def kernel_runs(device: torch.device, dtype: torch.dtype) -> bool:
    """The kernel switch (omnivideo.kernels), and on CUDA a GPU with fp8 conversions."""
    device = torch.device(device)
    return use_triton(device, dtype) and (device.type != "cuda" or fp8_supported(device))


def quantize_rows(t: torch.Tensor) -> FP8Rows:
    """t [R, K] fp32/fp16/bf16 (contiguous in K) -> FP8Rows: one scale per row (reference.py defines it)."""
    assert t.dim() == 2 and t.dtype in DTYPES, f"t must be [R, K] fp32/fp16/bf16, got {t.dtype} {tuple(t.shape)}"
    check_last_dim_contiguous(t=t)
    if not kernel_runs(t.device, t.dtype):
        return quantize_rows_reference(t)
    check_device(t)
    r, k = t.shape
    q = torch.empty(r, k, dtype=E4M3, device=t.device)
    scale = torch.empty(r, dtype=torch.float32, device=t.device)
    if r and k:
        block_k = min(2048, max(16, triton.next_power_of_2(k)))
        _row_quant_kernel[(r,)](t, q, scale, k, t.stride(0), q.stride(0), MAX=E4M3_MAX, AMAX_MIN=MIN_AMAX,
                                BLOCK_K=block_k, num_warps=8 if block_k >= 2048 else 4)
    elif r:
        scale.fill_(MIN_AMAX / E4M3_MAX)
    return FP8Rows(q, scale)
