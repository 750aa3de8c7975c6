"""NF4 GEMV variant "rows2" (M = 1): each program walks two row tiles that share the registers of x.

Why: the routed kernel (`omnivideo.kernels.nf4.nf4_gemv`) spends about 6 instructions per weight on
the 7B's shapes and reads them at ~1.2 TB/s on an H200 (instruction-bound, docs/decode_engine.md).
Of those, the load and the fp32 conversion of x are ~1.1 per weight: every thread owns one row and
converts the x elements of its columns for that row alone. Here a program computes rows
[i*2B, i*2B + B) and [i*2B + B, i*2B + 2B) as two tiles of the same shape, so their layouts are the
same and each thread's x registers serve both (half the x instructions per weight), and each
program has two tiles of words in flight (twice the bytes per program that the memory sees).
Everything else is the routed kernel's: the register lookup (GPU) or the 16-entry gather (the
interpreter, and fp32 x), per-block absmax decode, split-K partials summed by `split_sum_kernel`.

    y = nf4_gemv(x, w, plan=GemvPlan(variant="rows2"))     # x [1, K]; the launcher is nf4_gemv's
Spec: `omnivideo/kernels/nf4/reference.py` (tests/kernels/test_nf4_gemv.py runs it against the reference).
"""
import triton
import triton.language as tl

from omnivideo.kernels.nf4.gemv_parts import absmax_scales, stack8, x_to_f32
from omnivideo.kernels.nf4.nf4_lut import lut_words, nf4_lookup
from omnivideo.kernels.nf4.split_partials import store_rows


@triton.jit
def _load_x(X, o_x, m_x, LUT: tl.constexpr, X_ASM: tl.constexpr):
    """x of one step in fp32, once per program step (both tiles read these registers): [G, WB, 8] for
    the register lookup, else [G, HB, 2] (even, odd element of each byte)."""
    b_x = tl.load(X + o_x, mask=m_x, other=0.0)
    if LUT and X_ASM:
        b_x = x_to_f32(b_x)
    else:
        b_x = b_x.to(tl.float32)
    return b_x


@triton.jit
def _tile_sums(b_q, b_a, b_x, Code, t0, t1, t2, t3, t4, t5, t6, t7, LUT: tl.constexpr):
    """[BLOCK_N, G] block sums of one tile (int32 words for LUT, else bytes) times x, scaled by absmax b_a."""
    if LUT:
        v0, v1, v2, v3, v4, v5, v6, v7 = nf4_lookup(b_q, t0, t1, t2, t3, t4, t5, t6, t7)
        b_v = stack8(v0, v1, v2, v3, v4, v5, v6, v7, b_q.shape[0], b_q.shape[1], b_q.shape[2])
        sums = tl.sum(tl.sum(b_v * b_x[None, :, :, :], axis=3), axis=2)
    else:
        b_hi = tl.load(Code + (b_q >> 4).to(tl.int32))  # element 2j: high nibble
        b_lo = tl.load(Code + (b_q & 0xF).to(tl.int32))  # element 2j + 1
        b_xe, b_xo = tl.split(b_x)
        sums = tl.sum(b_hi * b_xe[None, :, :] + b_lo * b_xo[None, :, :], axis=2)
    return sums * b_a


@triton.jit
def nf4_gemv_rows2_kernel(
    X, Packed, Absmax, AbsCode, AbsScale, Offset, Code, Bias, Out, Part,  #
    N, K, stride_xm, stride_om, K_PER_SPLIT,  #
    M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCKSIZE: tl.constexpr,  #
    ABS_BLOCK: tl.constexpr, NESTED: tl.constexpr, HAS_BIAS: tl.constexpr, SPLIT: tl.constexpr,  #
    LUT: tl.constexpr, OFFSETS: tl.constexpr, X_ASM: tl.constexpr,
):
    """The routed kernel's arguments; grid (cdiv(N, 2 * BLOCK_N), splits); M must be 1."""
    tl.static_assert(M == 1, "rows2 computes one row of x")
    G: tl.constexpr = BLOCK_K // BLOCKSIZE
    i_n, i_k = tl.program_id(0), tl.program_id(1)
    o_a = i_n * 2 * BLOCK_N + tl.arange(0, BLOCK_N)  # tile A's rows; tile B's are BLOCK_N further
    o_b = o_a + BLOCK_N
    m_a, m_b = o_a < N, o_b < N
    o_g = tl.arange(0, G)
    if LUT:
        WB: tl.constexpr = BLOCKSIZE // 8  # 32-bit words per quant block
        t0, t1, t2, t3, t4, t5, t6, t7 = lut_words(Code)
        o_j = tl.arange(0, WB)
        row_len = K // 8
        o_e = tl.arange(0, 8)
        o_x = o_g[:, None, None] * BLOCKSIZE + o_j[None, :, None] * 8 + o_e[None, None, :]  # [G, WB, 8]
        unit = 8
    else:
        HB: tl.constexpr = BLOCKSIZE // 2  # bytes per quant block
        t0, t1, t2, t3, t4, t5, t6, t7 = 0, 0, 0, 0, 0, 0, 0, 0  # unused by the gather
        o_j = tl.arange(0, HB)
        row_len = K // 2
        o_e = tl.arange(0, 2)
        o_x = o_g[:, None, None] * BLOCKSIZE + o_j[None, :, None] * 2 + o_e[None, None, :]  # [G, HB, 2]
        unit = 2
    inner = o_g[None, :, None] * (BLOCKSIZE // unit) + o_j[None, None, :]
    p_a = Packed + o_a.to(tl.int64)[:, None, None] * row_len + inner
    p_b = Packed + o_b.to(tl.int64)[:, None, None] * row_len + inner
    blk_a = o_a[:, None] * (K // BLOCKSIZE) + o_g[None, :]
    blk_b = o_b[:, None] * (K // BLOCKSIZE) + o_g[None, :]
    acc_a = tl.zeros([BLOCK_N, G], dtype=tl.float32)
    acc_b = tl.zeros([BLOCK_N, G], dtype=tl.float32)
    k_lo = i_k * K_PER_SPLIT
    k_hi = tl.minimum(k_lo + K_PER_SPLIT, K)
    # the first step's tiles and scales; each step then loads the next step's before computing
    m_g = ((k_lo + o_g * BLOCKSIZE) < k_hi)[None, :]
    ma, mb = m_a[:, None] & m_g, m_b[:, None] & m_g
    q_a = tl.load(p_a + k_lo // unit, mask=ma[:, :, None], other=0)
    q_b = tl.load(p_b + k_lo // unit, mask=mb[:, :, None], other=0)
    s_a = absmax_scales(Absmax, AbsCode, AbsScale, Offset, blk_a + k_lo // BLOCKSIZE, ma, ABS_BLOCK, NESTED, OFFSETS)
    s_b = absmax_scales(Absmax, AbsCode, AbsScale, Offset, blk_b + k_lo // BLOCKSIZE, mb, ABS_BLOCK, NESTED, OFFSETS)
    for k0 in range(k_lo, k_hi, BLOCK_K):
        k1 = k0 + BLOCK_K
        m_g1 = ((k1 + o_g * BLOCKSIZE) < k_hi)[None, :]
        ma1, mb1 = m_a[:, None] & m_g1, m_b[:, None] & m_g1
        q_a1 = tl.load(p_a + k1 // unit, mask=ma1[:, :, None], other=0)
        q_b1 = tl.load(p_b + k1 // unit, mask=mb1[:, :, None], other=0)
        s_a1 = absmax_scales(Absmax, AbsCode, AbsScale, Offset, blk_a + k1 // BLOCKSIZE, ma1, ABS_BLOCK, NESTED,
                             OFFSETS)
        s_b1 = absmax_scales(Absmax, AbsCode, AbsScale, Offset, blk_b + k1 // BLOCKSIZE, mb1, ABS_BLOCK, NESTED,
                             OFFSETS)
        b_x = _load_x(X + k0, o_x, ((k0 + o_g * BLOCKSIZE) < k_hi)[:, None, None], LUT, X_ASM)
        acc_a += _tile_sums(q_a, s_a, b_x, Code, t0, t1, t2, t3, t4, t5, t6, t7, LUT)
        acc_b += _tile_sums(q_b, s_b, b_x, Code, t0, t1, t2, t3, t4, t5, t6, t7, LUT)
        q_a, q_b, s_a, s_b = q_a1, q_b1, s_a1, s_b1
    store_rows(acc_a, acc_a, acc_a, acc_a, Bias, Out, Part, o_a, m_a, i_k, N, stride_om, 1, HAS_BIAS, SPLIT)
    store_rows(acc_b, acc_b, acc_b, acc_b, Bias, Out, Part, o_b, m_b, i_k, N, stride_om, 1, HAS_BIAS, SPLIT)
