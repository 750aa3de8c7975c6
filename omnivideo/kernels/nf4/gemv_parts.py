"""Jitted pieces shared by the NF4 GEMV kernels (`nf4_gemv.py`, `nf4_gemv_rows2.py`): x to fp32, the
8-value join of a word's codes, and the per-quant-block absmax decode.

    b_x = x_to_f32(b_x)                        # bf16/fp16 tile -> fp32, once per element
    b_v = stack8(v0, ..., v7, BLOCK_N, G, WB)   # [BLOCK_N, G, WB] x 8 -> [BLOCK_N, G, WB, 8]
    b_a = absmax_scales(Absmax, AbsCode, AbsScale, Offset, i_b, m_t, ABS_BLOCK, NESTED, OFFSETS)
"""
import triton
import triton.language as tl


@triton.jit
def x_to_f32(b_x):
    """bf16/fp16 x -> fp32 in the layout x was loaded in. Opaque to Triton on purpose (not pure): a
    plain cast is moved after the shared-memory broadcast of x to every row's threads, which costs one
    conversion per weight (each thread owns one row; H100 SASS); here each x element is converted once."""
    b_h = b_x.to(tl.int16, bitcast=True)
    if b_x.dtype == tl.bfloat16:  # the 16 bits become the high half of the fp32
        b_w = tl.inline_asm_elementwise("{\n.reg .b16 z;\nmov.b16 z, 0;\nmov.b32 $0, {z, $1};\n}", "=r,h", [b_h],
                                        dtype=tl.int32, is_pure=False, pack=1)
    else:
        b_w = tl.inline_asm_elementwise("{\n.reg .f32 f;\ncvt.f32.f16 f, $1;\nmov.b32 $0, f;\n}", "=r,h", [b_h],
                                        dtype=tl.int32, is_pure=False, pack=1)
    return b_w.to(tl.float32, bitcast=True)


@triton.jit
def stack8(v0, v1, v2, v3, v4, v5, v6, v7, BLOCK_N: tl.constexpr, G: tl.constexpr, WB: tl.constexpr):
    """8 tensors [BLOCK_N, G, WB] -> [BLOCK_N, G, WB, 8] with v_e at [..., e]. Each join adds a minor
    in-register dimension (no data movement): joining over bit 2 of e first, then bit 1, then bit 0
    leaves the new dims as (bit 2, bit 1, bit 0), i.e. e in row-major order."""
    even = tl.join(tl.join(v0, v4), tl.join(v2, v6))
    odd = tl.join(tl.join(v1, v5), tl.join(v3, v7))
    return tl.reshape(tl.join(even, odd), [BLOCK_N, G, WB, 8])


@triton.jit
def absmax_scales(Absmax, AbsCode, AbsScale, Offset, i_b, m_t, ABS_BLOCK: tl.constexpr, NESTED: tl.constexpr,
            OFFSETS: tl.constexpr = False):
    """[BLOCK_N, G] float32 scales of the quant blocks i_b (decoded from the nested form if needed).
    OFFSETS: one offset per absmax2 block (weights stored back to back) instead of a scalar."""
    if NESTED:  # absmax[b] = code2[q[b]] * absmax2[b // 256] + offset
        b_a = tl.load(Absmax + i_b, mask=m_t, other=0).to(tl.int32)
        b_a = tl.load(AbsCode + b_a) * tl.load(AbsScale + i_b // ABS_BLOCK, mask=m_t, other=0.0)
        if OFFSETS:
            return b_a + tl.load(Offset + i_b // ABS_BLOCK, mask=m_t, other=0.0)
        return b_a + tl.load(Offset)
    else:
        return tl.load(Absmax + i_b, mask=m_t, other=0.0)
