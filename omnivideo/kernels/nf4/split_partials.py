"""Split-K epilogues of the NF4 GEMV: fp32 partials per split and their deterministic sum.

A GEMV whose rows are too few to fill the GPU splits K; each split writes fp32 partials [splits, M, N]
(`store_rows`) and `split_sum_kernel` sums them in split order (the same bits every run, no float
atomics), adds the bias and casts. Measured alternative, not kept: the last split of each row tile to
finish (atomic ticket, acq_rel) summing the partials in the GEMV itself saved the 56 second launches of
a 7B decode step (69 µs) but made the 112 GEMVs 113 µs slower (barrier + atomic at every program's
end; H100, docs/decode_engine.md).
"""
import triton
import triton.language as tl


@triton.jit
def store_rows(acc0, acc1, acc2, acc3, Bias, Out, Part, o_n, m_n, i_k, N, stride_om, M: tl.constexpr,
                HAS_BIAS: tl.constexpr, SPLIT: tl.constexpr):
    """Row sums of the [BLOCK_N, G] accumulators: fp32 partials [splits, M, N] when K is split
    (summed by split_sum_kernel), else + bias, cast and stored."""
    if SPLIT:
        p_p = Part + (i_k * M) * N + o_n
        tl.store(p_p, tl.sum(acc0, axis=1), mask=m_n)
        if M > 1:
            tl.store(p_p + N, tl.sum(acc1, axis=1), mask=m_n)
        if M > 2:
            tl.store(p_p + 2 * N, tl.sum(acc2, axis=1), mask=m_n)
        if M > 3:
            tl.store(p_p + 3 * N, tl.sum(acc3, axis=1), mask=m_n)
    else:
        b_bias = tl.zeros([o_n.shape[0]], dtype=tl.float32)
        if HAS_BIAS:
            b_bias = tl.load(Bias + o_n, mask=m_n, other=0.0).to(tl.float32)
        p_o = Out + o_n
        tl.store(p_o, (tl.sum(acc0, axis=1) + b_bias).to(Out.dtype.element_ty), mask=m_n)
        if M > 1:
            tl.store(p_o + stride_om, (tl.sum(acc1, axis=1) + b_bias).to(Out.dtype.element_ty), mask=m_n)
        if M > 2:
            tl.store(p_o + 2 * stride_om, (tl.sum(acc2, axis=1) + b_bias).to(Out.dtype.element_ty), mask=m_n)
        if M > 3:
            tl.store(p_o + 3 * stride_om, (tl.sum(acc3, axis=1) + b_bias).to(Out.dtype.element_ty), mask=m_n)


@triton.jit
def split_sum_kernel(Part, Bias, Out, N, stride_om, SPLITS, M: tl.constexpr, HAS_BIAS: tl.constexpr,
                      BLOCK: tl.constexpr):
    """Out[m, n] = sum over s of Part[s, m, n] (+ bias[n]), in split order (deterministic)."""
    i_m, i_n = tl.program_id(0), tl.program_id(1)
    o_n = i_n * BLOCK + tl.arange(0, BLOCK)
    m_n = o_n < N
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for s in range(SPLITS):
        acc += tl.load(Part + (s * M + i_m) * N + o_n, mask=m_n, other=0.0)
    if HAS_BIAS:
        acc += tl.load(Bias + o_n, mask=m_n, other=0.0).to(tl.float32)
    tl.store(Out + i_m * stride_om + o_n, acc.to(Out.dtype.element_ty), mask=m_n)
