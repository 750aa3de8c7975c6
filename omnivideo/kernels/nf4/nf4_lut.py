"""NF4 code lookup in registers: one 32-bit word of packed NF4 (8 nibbles) -> 8 float32 code values.

Why: a batch-1 GEMV over NF4 weights is a stream of 4-bit indices into a 16-entry table. Gathering
the table from memory (L1) costs one load instruction per element, and that, not DRAM, bounded our
first kernel and bitsandbytes' at 0.5-1.0 TB/s on an H100. Here the table lives in 8 registers as
bytes and `prmt` (byte permute, 8 source bytes, 4 selector nibbles) looks up 4 elements at a time:

    table  L0..L3 = low bytes of the 16 fp16 codes, 4 per register (entry e in register e // 4,
           byte e % 4); H0..H3 = their high bytes.
    word   little-endian bytes b0..b3; byte j holds element 2j in its high nibble (bitsandbytes'
           order), so the nibbles from bit 0 up are n0..n7 = e1, e0, e3, e2, e5, e4, e7, e6.
    selectors, once per word (prmt reads only the low 16 bits of its selector, so the upper 4 nibbles
    use s >> 16 and t >> 16):
      s  = word & 0x77777777                       low 3 bits of each nibble: a byte among 8
      t  = ((word >> 1) & 0x44444444) | 0x32103210 byte k of the first (bit 3 clear) or second lookup
    per 4 nibbles (n0..n3 = the low 16 bits, then n4..n7):
      lo = prmt(prmt(L0, L1, s), prmt(L2, L3, s), t)   low bytes of code[n0..n3]
      hi = the same over H0..H3                        high bytes
      prmt(lo, hi, 0x4051) = half2(code[n1], code[n0]) = (e0, e1); 0x6273 gives (e2, e3)
    then cvt.f32.f16 per value. About 3 integer instructions per element, no memory access.

The codes pass through fp16 (relative rounding <= 2^-11, exact for 0 and +-1): finer than the bf16
that bitsandbytes dequantizes to for a bf16 model. The table is built in-kernel from the weight's own
`code` tensor (`lut_words`), so any 16-entry code works and no host sync is needed.

PTX only: the Triton interpreter cannot run inline assembly, so CPU tests check the sequence with a
small PTX emulator (tests/kernels/test_nf4_lut.py) and the GPU tests check the compiled kernel.
"""
import triton
import triton.language as tl

_HALF = """
prmt.b32 a, $9, $10, s;
prmt.b32 b, $11, $12, s;
prmt.b32 lo, a, b, t;
prmt.b32 a, $13, $14, s;
prmt.b32 b, $15, $16, s;
prmt.b32 hi, a, b, t;
prmt.b32 p, lo, hi, 0x4051;
mov.b32 {{h0, h1}}, p;
cvt.f32.f16 ${o0}, h0;
cvt.f32.f16 ${o1}, h1;
prmt.b32 p, lo, hi, 0x6273;
mov.b32 {{h0, h1}}, p;
cvt.f32.f16 ${o2}, h0;
cvt.f32.f16 ${o3}, h1;
"""
# $0..$7: the 8 values in element order; $8: the word; $9..$12: L0..L3; $13..$16: H0..H3.
# The selectors of both halves are computed once over the whole word (prmt reads only the low 16 bits
# of its selector): 4 instructions + 2 shifts per word instead of 4 per half plus a shift of the word.
LUT_ASM = tl.constexpr("{\n.reg .b32 s, t, a, b, lo, hi, p;\n.reg .b16 h0, h1;\n"
           + "and.b32 s, $8, 0x77777777;\nshr.u32 t, $8, 1;\nand.b32 t, t, 0x44444444;\nor.b32 t, t, 0x32103210;\n"
           + _HALF.format(o0=0, o1=1, o2=2, o3=3)
           + "shr.u32 s, s, 16;\nshr.u32 t, t, 16;\n"
           + _HALF.format(o0=4, o1=5, o2=6, o3=7)
           + "}")
LUT_CONSTRAINTS = tl.constexpr(",".join(["=f"] * 8 + ["r"] * 9))


@triton.jit
def _bit_or(a, b):
    return a | b


@triton.jit
def _table_word(part, group, i: tl.constexpr):
    """OR of the 4 bytes of entries 4i..4i+3 (already shifted to their byte): one table register."""
    return tl.reduce(tl.where(group == i, part, 0), 0, _bit_or)


@triton.jit
def lut_words(Code):
    """The 8 table registers (int32 scalars) from the 16 float32 codes at Code."""
    o = tl.arange(0, 16)
    h = tl.load(Code + o).to(tl.float16).to(tl.int16, bitcast=True).to(tl.int32) & 0xFFFF
    shift = (o % 4) * 8
    lo = (h & 0xFF) << shift
    hi = (h >> 8) << shift
    g = o // 4
    return (_table_word(lo, g, 0), _table_word(lo, g, 1), _table_word(lo, g, 2), _table_word(lo, g, 3),
            _table_word(hi, g, 0), _table_word(hi, g, 1), _table_word(hi, g, 2), _table_word(hi, g, 3))


@triton.jit
def nf4_lookup(words, l0, l1, l2, l3, h0, h1, h2, h3):
    """words: int32 tensor of packed NF4 -> 8 float32 tensors of its shape, elements 0..7 of each word."""
    return tl.inline_asm_elementwise(LUT_ASM, LUT_CONSTRAINTS, [words, l0, l1, l2, l3, h0, h1, h2, h3],
                                     dtype=(tl.float32,) * 8, is_pure=True, pack=1)
