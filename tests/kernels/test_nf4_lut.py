"""The register lookup of NF4 codes (omnivideo/kernels/nf4/nf4_lut.py).

The PTX itself only runs on a GPU (the gpu-marked GEMV tests compile it). On CPU the instruction
sequence is executed by a small emulator of the five PTX instructions it uses, on every byte value,
and the table registers come from the Triton helper under the interpreter: together they check the
selector arithmetic and the element order against the reference's nibble order.
"""
import re

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from conftest import DEVICE

import bitsandbytes.functional as bnbf
from omnivideo.kernels.nf4.nf4_gemv import stack8
from omnivideo.kernels.nf4.nf4_lut import LUT_ASM, LUT_CONSTRAINTS, lut_words

NF4 = bnbf.get_4bit_type("nf4", device="cpu").float()


@triton.jit
def _table_kernel(Code, Out):
    t0, t1, t2, t3, t4, t5, t6, t7 = lut_words(Code)
    tl.store(Out + 0, t0)
    tl.store(Out + 1, t1)
    tl.store(Out + 2, t2)
    tl.store(Out + 3, t3)
    tl.store(Out + 4, t4)
    tl.store(Out + 5, t5)
    tl.store(Out + 6, t6)
    tl.store(Out + 7, t7)


def table_registers(code: torch.Tensor) -> list[int]:
    out = torch.zeros(8, dtype=torch.int32, device=DEVICE)
    _table_kernel[(1,)](code.to(DEVICE), out)
    return [int(v) & 0xFFFFFFFF for v in out.cpu()]


def expected_registers(code: torch.Tensor) -> list[int]:
    half = code.half().view(torch.int16).int() & 0xFFFF
    lo = [sum(int(half[4 * r + b] & 0xFF) << (8 * b) for b in range(4)) for r in range(4)]
    hi = [sum(int(half[4 * r + b] >> 8) << (8 * b) for b in range(4)) for r in range(4)]
    return lo + hi


def prmt(a: int, b: int, c: int) -> int:
    """PTX prmt.b32 (default mode): byte i of d = byte (c >> 4i) & 7 of {b, a}; bit 3 = sign replicate."""
    src = (b << 32) | a
    d = 0
    for i in range(4):
        sel = (c >> (4 * i)) & 0xF
        byte = (src >> (8 * (sel & 7))) & 0xFF
        if sel & 8:
            byte = 0xFF if byte & 0x80 else 0
        d |= byte << (8 * i)
    return d


def run_ptx(asm: str, operands: dict[str, int]) -> dict[str, float]:
    """Execute the lookup's PTX over 32-bit operands; returns the f32 outputs by name ($0..$7)."""
    regs = dict(operands)
    out = {}

    def val(tok: str) -> int:
        tok = tok.strip()
        return int(tok, 16) if tok.startswith("0x") else regs[tok]

    for line in asm.splitlines():
        line = line.strip().rstrip(";")
        if not line or line in "{}" or line.startswith(".reg"):
            continue
        op, args = line.split(None, 1)
        if op == "mov.b32":  # mov.b32 {h0, h1}, p: split a 32-bit register into two 16-bit ones
            dst, src = re.match(r"\{(\w+), (\w+)\}, (\w+)", args).groups()[:2], args.rsplit(",", 1)[1]
            regs[dst[0]], regs[dst[1]] = val(src) & 0xFFFF, val(src) >> 16
            continue
        d, *srcs = [a.strip() for a in args.split(",")]
        if op == "and.b32":
            regs[d] = val(srcs[0]) & val(srcs[1])
        elif op == "or.b32":
            regs[d] = val(srcs[0]) | val(srcs[1])
        elif op == "shr.u32":
            regs[d] = val(srcs[0]) >> int(srcs[1])
        elif op == "prmt.b32":
            regs[d] = prmt(val(srcs[0]), val(srcs[1]), val(srcs[2]))
        elif op == "cvt.f32.f16":
            out[d] = float(np.array([val(srcs[0])], dtype=np.uint16).view(np.float16)[0])
        else:
            raise AssertionError(f"the emulator does not know {op}")
    return out


def lookup(words: list[int], table: list[int]) -> list[list[float]]:
    operands = {f"${9 + i}": t for i, t in enumerate(table)}
    return [[v for _, v in sorted(run_ptx(LUT_ASM.value, {**operands, "$8": w}).items())] for w in words]


def test_table_registers_hold_the_fp16_code_bytes():
    assert table_registers(NF4) == expected_registers(NF4)
    other = torch.linspace(-3, 2, 16)  # any 16-entry code, not only NF4
    assert table_registers(other) == expected_registers(other)


@pytest.mark.parametrize("code", [NF4, torch.linspace(-3, 2, 16)], ids=["nf4", "linear"])
def test_lookup_gives_the_codes_in_element_order(code):
    """Every byte value at every byte position: element 2j = high nibble of byte j (bnb's order)."""
    table = expected_registers(code)
    half = code.half().float()
    rng = np.random.default_rng(0)
    words = [b | int(rng.integers(1 << 24)) << 8 for b in range(256)]
    words += [(b << 24) | (b << 8) for b in range(256)] + [0, 0xFFFFFFFF]
    for word, values in zip(words, lookup(words, table)):
        nibbles = []
        for j in range(4):  # bytes low to high
            byte = (word >> (8 * j)) & 0xFF
            nibbles += [byte >> 4, byte & 0xF]
        assert values == [half[q].item() for q in nibbles], hex(word)


def test_asm_interface_matches_its_operands():
    """8 f32 outputs, then the word and the 8 table registers, and every $n used is declared."""
    assert LUT_CONSTRAINTS.value.split(",") == ["=f"] * 8 + ["r"] * 9
    used = {int(n) for n in re.findall(r"\$(\d+)", LUT_ASM.value)}
    assert used == set(range(17))


def test_fp16_rounding_of_the_nf4_codes_is_small():
    """The register table holds fp16 codes: within 2^-11 relative of bnb's fp32 codes, 0 and +-1 exact."""
    rel = ((NF4.half().float() - NF4).abs() / NF4.abs().clamp_min(1e-12)).max().item()
    assert rel <= 2 ** -11
    assert NF4.half().float()[[0, 7, 15]].tolist() == [-1.0, 0.0, 1.0]


@triton.jit
def _stack_kernel(In, Out, BLOCK_N: tl.constexpr, G: tl.constexpr, WB: tl.constexpr):
    o = (tl.arange(0, BLOCK_N)[:, None, None] * G + tl.arange(0, G)[None, :, None]) * WB + tl.arange(0, WB)[None, None, :]
    size: tl.constexpr = BLOCK_N * G * WB
    v = stack8(tl.load(In + o), tl.load(In + size + o), tl.load(In + 2 * size + o), tl.load(In + 3 * size + o),
               tl.load(In + 4 * size + o), tl.load(In + 5 * size + o), tl.load(In + 6 * size + o),
               tl.load(In + 7 * size + o), BLOCK_N, G, WB)
    tl.store(Out + o[:, :, :, None] * 8 + tl.arange(0, 8)[None, None, None, :], v)


def test_stack8_puts_the_eight_lookups_in_element_order():
    """The GEMV multiplies the stacked codes with x read contiguously: [.., w, e] must hold output e."""
    vs = torch.randn(8, 4, 2, 8, device=DEVICE)  # 8 outputs of [BLOCK_N, G, WB]
    out = torch.empty(4, 2, 8, 8, device=DEVICE)
    _stack_kernel[(1,)](vs, out, BLOCK_N=4, G=2, WB=8)
    assert torch.equal(out, vs.permute(1, 2, 3, 0))
