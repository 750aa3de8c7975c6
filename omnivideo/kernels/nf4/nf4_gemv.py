"""NF4 GEMV for decoding: y[M, N] = x[M, K] @ dequant(W)^T for M = 1..4, W in bitsandbytes' NF4 layout.

The layout (packed nibbles, per-64 absmax, double-quantized absmax) is defined in
`omnivideo/kernels/nf4/reference.py`. At M <= 4 the op is a read of the weights: 0.5 byte per element plus
1/64 byte of absmax, against a few FLOPs. The kernel therefore is built around the byte stream:
- grid (N tiles, K splits): a program owns BLOCK_N rows and a K range, and walks it BLOCK_K
  elements at a time; a tile is [BLOCK_N, G, HB] bytes (G quant blocks of HB = blocksize / 2 bytes),
  contiguous along HB, so each thread issues 16-byte loads;
- the codes: on CUDA (fp16/bf16 x) the tile is read as 32-bit words and each word's 8 codes come
  from a table held in registers (`omnivideo.kernels.nf4.nf4_lut`, byte permutes, no memory access); otherwise a
  byte gives two NF4 indices (high nibble = even k) and the 16-entry table is gathered from global
  memory (64 bytes, stays in L1). The gather costs a load instruction per element and held the
  first version to 0.5-0.8 TB/s on an H100 (docs/decode_engine.md);
- per quant block the products with x are summed first and scaled by absmax once (absmax is
  decoded in-kernel from its uint8 index, the dynamic map and the per-256 scale, so no dequantized
  absmax array is ever written);
- small N (the 512-row K/V projections) would leave most SMs idle, so K is split; each split
  writes fp32 partials [splits, M, N] and a second small kernel sums them in a fixed order (no
  atomics: the result is deterministic), adds the bias and casts (`omnivideo/kernels/nf4/split_partials.py`).
No host syncs and only torch-allocated outputs: a CUDA graph can capture it.

    w = NF4Weight(...)                       # omnivideo.kernels.nf4.reference
    y = nf4_gemv(x, w, bias)                 # x [M, K] (M <= 4) fp32/fp16/bf16 -> y [M, N] in x's dtype
"""
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device
from omnivideo.kernels.nf4.gemv_parts import absmax_scales as _absmax, stack8, x_to_f32 as _x_to_f32
from omnivideo.kernels.nf4.nf4_lut import lut_words, nf4_lookup
from omnivideo.kernels.nf4.split_partials import split_sum_kernel, store_rows
from omnivideo.kernels.nf4.reference import NF4Weight

MAX_ROWS = 4
VARIANTS = ("base", "rows2")   # rows2: two row tiles per program share x (M = 1; nf4_gemv_rows2.py)
VARIANT_ENV = "OMNIVIDEO_NF4_VARIANT"  # the default plan's variant (bench / probe sweeps; default base)
_SM_COUNT: dict[int, int] = {}


@dataclass(frozen=True)
class GemvPlan:
    """Tile sizes of one launch. block_k: elements of K per step (a power of two, a multiple of the
    quant blocksize); split_k: programs along K (1 = no partials); x_asm: convert fp16/bf16 x to fp32
    once per element before its broadcast (`_x_to_f32`, register-lookup path only); variant: "base" (this
    file's kernel) or "rows2" (`omnivideo.kernels.nf4.nf4_gemv_rows2`: 2 x block_n rows per program, x
    shared; only for M = 1, other M take base)."""
    block_n: int = 8
    block_k: int = 512
    split_k: int = 1
    num_warps: int = 4
    x_asm: bool = True
    variant: str = "base"

    def __post_init__(self):
        for name in ("block_n", "block_k", "num_warps"):
            v = getattr(self, name)
            if v < 1 or v & (v - 1):
                raise ValueError(f"{name} must be a power of two, got {v}")
        if self.split_k < 1:
            raise ValueError(f"split_k must be >= 1, got {self.split_k}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")


@triton.jit
def _block_sums(Code, b_q, X, o_x, m_x):
    """[BLOCK_N, G] sums over each quant block of code[nibble] * x; b_q [BLOCK_N, G, HB] bytes."""
    b_hi = tl.load(Code + (b_q >> 4).to(tl.int32))  # element 2j: high nibble
    b_lo = tl.load(Code + (b_q & 0xF).to(tl.int32))  # element 2j + 1
    b_x = tl.load(X + o_x, mask=m_x, other=0.0).to(tl.float32)  # [G, HB, 2]
    b_xe, b_xo = tl.split(b_x)  # [G, HB] each
    return tl.sum(b_hi * b_xe[None, :, :] + b_lo * b_xo[None, :, :], axis=2)


@triton.jit
def _word_sums(b_v, X, o_x, m_x, X_ASM: tl.constexpr):
    """[BLOCK_N, G] sums over each quant block of v * x; b_v [BLOCK_N, G, WB, 8] codes in element
    order, x [G, WB, 8] read contiguously (16-byte loads for bf16; a per-element x load would cost
    as many load instructions as the table gather this path avoids)."""
    b_x = tl.load(X + o_x, mask=m_x, other=0.0)
    if X_ASM:
        b_x = _x_to_f32(b_x)
    else:
        b_x = b_x.to(tl.float32)
    return tl.sum(tl.sum(b_v * b_x[None, :, :, :], axis=3), axis=2)


@triton.jit
def _nf4_gemv_kernel(
    X, Packed, Absmax, AbsCode, AbsScale, Offset, Code, Bias, Out, Part,  #
    N, K, stride_xm, stride_om, K_PER_SPLIT,  #
    M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCKSIZE: tl.constexpr,  #
    ABS_BLOCK: tl.constexpr, NESTED: tl.constexpr, HAS_BIAS: tl.constexpr, SPLIT: tl.constexpr,  #
    LUT: tl.constexpr, OFFSETS: tl.constexpr, X_ASM: tl.constexpr,
):
    """LUT: Packed is int32 words and the codes come from registers (`omnivideo.kernels.nf4.nf4_lut`, GPU only);
    else Packed is bytes and each nibble's code is gathered from the 16-entry table at Code."""
    G: tl.constexpr = BLOCK_K // BLOCKSIZE
    HB: tl.constexpr = BLOCKSIZE // 2  # bytes per quant block
    WB: tl.constexpr = BLOCKSIZE // 8  # 32-bit words per quant block
    i_n, i_k = tl.program_id(0), tl.program_id(1)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N]
    m_n = o_n < N
    o_g = tl.arange(0, G)
    if LUT:
        t0, t1, t2, t3, t4, t5, t6, t7 = lut_words(Code)
        o_j = tl.arange(0, WB)
        p_q = Packed + o_n.to(tl.int64)[:, None, None] * (K // 8) + o_g[None, :, None] * WB + o_j[None, None, :]
        o_e = tl.arange(0, 8)
        o_x = o_g[:, None, None] * BLOCKSIZE + o_j[None, :, None] * 8 + o_e[None, None, :]  # [G, WB, 8]
    else:
        o_j = tl.arange(0, HB)
        o_e = tl.arange(0, 2)
        p_q = Packed + o_n.to(tl.int64)[:, None, None] * (K // 2) + o_g[None, :, None] * HB + o_j[None, None, :]
        o_x = o_g[:, None, None] * BLOCKSIZE + o_j[None, :, None] * 2 + o_e[None, None, :]  # [G, HB, 2]
    b_blk = o_n[:, None] * (K // BLOCKSIZE) + o_g[None, :]  # [BLOCK_N, G] absmax index at k = 0
    acc0 = tl.zeros([BLOCK_N, G], dtype=tl.float32)
    acc1 = tl.zeros([BLOCK_N, G], dtype=tl.float32)
    acc2 = tl.zeros([BLOCK_N, G], dtype=tl.float32)
    acc3 = tl.zeros([BLOCK_N, G], dtype=tl.float32)
    k_lo = i_k * K_PER_SPLIT
    k_hi = tl.minimum(k_lo + K_PER_SPLIT, K)
    if LUT:  # the first step's words and scales; each step then loads the next one's before computing
        m_t = m_n[:, None] & ((k_lo + o_g * BLOCKSIZE) < k_hi)[None, :]
        b_w = tl.load(p_q + k_lo // 8, mask=m_t[:, :, None], other=0)  # [BLOCK_N, G, WB] int32
        b_a = _absmax(Absmax, AbsCode, AbsScale, Offset, b_blk + k_lo // BLOCKSIZE, m_t, ABS_BLOCK, NESTED, OFFSETS)
    for k0 in range(k_lo, k_hi, BLOCK_K):
        m_g = (k0 + o_g * BLOCKSIZE) < k_hi  # whole quant blocks: K is a multiple of BLOCKSIZE
        if LUT:
            # software pipelining by hand: Triton only pipelines loads that feed tl.dot, and one
            # tile in flight per program leaves DRAM idle during the lookup (latency-bound)
            k1 = k0 + BLOCK_K
            m_t1 = m_n[:, None] & ((k1 + o_g * BLOCKSIZE) < k_hi)[None, :]
            b_w1 = tl.load(p_q + k1 // 8, mask=m_t1[:, :, None], other=0)
            b_a1 = _absmax(Absmax, AbsCode, AbsScale, Offset, b_blk + k1 // BLOCKSIZE, m_t1, ABS_BLOCK, NESTED,
                             OFFSETS)
            v0, v1, v2, v3, v4, v5, v6, v7 = nf4_lookup(b_w, t0, t1, t2, t3, t4, t5, t6, t7)
            b_v = stack8(v0, v1, v2, v3, v4, v5, v6, v7, BLOCK_N, G, WB)  # element e of word w at [.., w, e]
            m_x = m_g[:, None, None]
            acc0 += _word_sums(b_v, X + k0, o_x, m_x, X_ASM) * b_a
            if M > 1:
                acc1 += _word_sums(b_v, X + stride_xm + k0, o_x, m_x, X_ASM) * b_a
            if M > 2:
                acc2 += _word_sums(b_v, X + 2 * stride_xm + k0, o_x, m_x, X_ASM) * b_a
            if M > 3:
                acc3 += _word_sums(b_v, X + 3 * stride_xm + k0, o_x, m_x, X_ASM) * b_a
            b_w, b_a = b_w1, b_a1
        else:
            m_t = m_n[:, None] & m_g[None, :]  # [BLOCK_N, G]
            b_a = _absmax(Absmax, AbsCode, AbsScale, Offset, b_blk + k0 // BLOCKSIZE, m_t, ABS_BLOCK, NESTED, OFFSETS)
            b_q = tl.load(p_q + k0 // 2, mask=m_t[:, :, None], other=0)  # [BLOCK_N, G, HB] uint8
            m_x = m_g[:, None, None]
            acc0 += _block_sums(Code, b_q, X + k0, o_x, m_x) * b_a
            if M > 1:
                acc1 += _block_sums(Code, b_q, X + stride_xm + k0, o_x, m_x) * b_a
            if M > 2:
                acc2 += _block_sums(Code, b_q, X + 2 * stride_xm + k0, o_x, m_x) * b_a
            if M > 3:
                acc3 += _block_sums(Code, b_q, X + 3 * stride_xm + k0, o_x, m_x) * b_a
    store_rows(acc0, acc1, acc2, acc3, Bias, Out, Part, o_n, m_n, i_k, N, stride_om, M, HAS_BIAS, SPLIT)



def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 4  # the interpreter: any small number gives small grids
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SM_COUNT:
        _SM_COUNT[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _SM_COUNT[index]


def default_plan(m: int, n: int, k: int, blocksize: int, sm_count: int) -> GemvPlan:
    """Tiles for one shape: 8-row tiles (the best row count of the H100 sweep over 8-64 for every 7B
    shape with the register lookup); K split in powers of two until there are >= 4 programs per SM
    (3584 x 3584 and 3584 x 18944 get 2, 512 x 3584 gets 4, 18944 x 3584 none). The default is within
    9 % of the best swept plan on each shape (docs/decode_engine.md). The variant comes from
    $OMNIVIDEO_NF4_VARIANT (default "base"); rows2 counts its programs as tiles of 2 x 8 rows."""
    variant = os.environ.get(VARIANT_ENV, "base") or "base"
    block_k = max(blocksize, min(512, triton.next_power_of_2(k)))
    block_n = 8
    rows = block_n * (2 if variant == "rows2" and m == 1 else 1)
    tiles, steps = triton.cdiv(n, rows), triton.cdiv(k, block_k)
    split = 1
    while tiles * split < 4 * sm_count and split * 2 <= steps:
        split *= 2
    return GemvPlan(block_n=block_n, block_k=block_k, split_k=split, num_warps=4, variant=variant)


def nf4_gemv(x: torch.Tensor, w: NF4Weight, bias: torch.Tensor | None = None,
             plan: GemvPlan | None = None, lut: bool | None = None) -> torch.Tensor:
    """y = x @ dequant(W)^T (+ bias) for a few rows.

    Args:
        x: [M, K], 1 <= M <= 4, float32 / float16 / bfloat16, contiguous in K.
        w: the NF4 weight, W [N, K]; K must be a multiple of w.blocksize (so a quant block never
           straddles two rows) and of 2.
        bias: [N] or None. plan: tile sizes (default: `default_plan`).
        lut: look the codes up in registers (`omnivideo.kernels.nf4.nf4_lut`: fp16-rounded codes, CUDA only) or
            gather them from memory (exact fp32 codes). None: registers for fp16/bf16 x on CUDA.
    Returns:
        [M, N] in x's dtype (fp32 accumulation).
    """
    n, k = w.shape
    assert x.dim() == 2 and x.shape[1] == k, f"x must be [M, {k}], got {tuple(x.shape)}"
    m = x.shape[0]
    assert 1 <= m <= MAX_ROWS, f"nf4_gemv takes 1..{MAX_ROWS} rows, got {m} (use a dequantizing matmul)"
    assert x.dtype in (torch.float32, torch.float16, torch.bfloat16), f"x dtype {x.dtype}"
    assert x.stride(1) == 1, f"x must be contiguous in K, strides {x.stride()}"
    assert w.blocksize >= 32 and w.blocksize & (w.blocksize - 1) == 0, f"blocksize {w.blocksize}"
    assert k % w.blocksize == 0, f"K = {k} must be a multiple of the blocksize {w.blocksize}"
    assert w.packed.is_contiguous() and w.absmax.is_contiguous(), "packed and absmax must be contiguous"
    tensors = [x, w.packed, w.absmax, w.code]
    if w.nested:
        tensors += [w.absmax_code, w.absmax_scale, w.offset]
        assert w.absmax_code.dtype == w.absmax_scale.dtype == w.offset.dtype == torch.float32
        assert w.absmax_scale.is_contiguous() and w.offset.is_contiguous()
    if bias is not None:
        assert bias.shape == (n,) and bias.is_contiguous(), f"bias must be [{n}], got {tuple(bias.shape)}"
        tensors.append(bias)
    assert w.code.dtype == torch.float32 and w.code.is_contiguous(), "code must be float32 [16]"
    check_device(*tensors)
    plan = plan or default_plan(m, n, k, w.blocksize, _sm_count(x.device))
    assert plan.block_k % w.blocksize == 0, f"block_k {plan.block_k} is not a multiple of {w.blocksize}"
    steps = triton.cdiv(k, plan.block_k)
    split = min(plan.split_k, steps)
    k_per_split = triton.cdiv(steps, split) * plan.block_k
    split = triton.cdiv(k, k_per_split)  # no empty splits
    out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    part = torch.empty(split, m, n, dtype=torch.float32, device=x.device) if split > 1 else out
    if lut is None:
        lut = x.device.type == "cuda" and x.dtype != torch.float32
    assert not lut or x.device.type == "cuda", "the register lookup is PTX: CUDA only"
    packed = w.packed
    if lut:  # 8 nibbles per 32-bit word; rows start on words since K is a multiple of the blocksize
        assert packed.data_ptr() % 4 == 0, "packed weights must be 4-byte aligned"
        packed = packed.reshape(-1).view(torch.int32)
    nested = w.nested
    kernel, rows = _nf4_gemv_kernel, plan.block_n
    if plan.variant == "rows2" and m == 1:
        from omnivideo.kernels.nf4.nf4_gemv_rows2 import nf4_gemv_rows2_kernel  # imports this module's helpers

        kernel, rows = nf4_gemv_rows2_kernel, 2 * plan.block_n
    kernel[(triton.cdiv(n, rows), split)](
        x, packed, w.absmax, w.absmax_code if nested else w.absmax, w.absmax_scale if nested else w.absmax,
        w.offset if nested else w.absmax, w.code, bias if bias is not None else out, out, part,  #
        n, k, x.stride(0), out.stride(0), k_per_split,  #
        M=m, BLOCK_N=plan.block_n, BLOCK_K=plan.block_k, BLOCKSIZE=w.blocksize, ABS_BLOCK=w.absmax_blocksize,
        NESTED=nested, HAS_BIAS=bias is not None, SPLIT=split > 1, LUT=lut, OFFSETS=w.offset_per_block,
        X_ASM=plan.x_asm and lut and x.dtype != torch.float32, num_warps=plan.num_warps)
    if split > 1:
        block = min(1024, triton.next_power_of_2(n))
        split_sum_kernel[(m, triton.cdiv(n, block))](part, bias if bias is not None else out, out, n, out.stride(0),
                                                      split, M=m, HAS_BIAS=bias is not None, BLOCK=block)
    return out
