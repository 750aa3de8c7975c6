"""Split-K flash decoding over a per-head slimmed KV (packed, CSR) plus a shared dense tail.

One new token per step: q [Hq, d]. KV head u's keys are its packed rows (`PackedKV`, different
lengths per head) followed by the generated tokens in `DecodeTail`. Decoding is bandwidth bound, so:
- grid (Hkv, splits): each program loads a K/V tile once for all g query heads of its KV head;
- each program covers 1/splits of its head's keys and writes a partial (out, log-sum-exp);
- a small second kernel merges the splits per query head.
The grid depends only on Hkv and the number of splits (fixed per question), never on the tail length:
per-head lengths come from `offsets` and `tail.length` on the device, so a captured CUDA graph can
replay the step while the tail grows.

Usage:
    tail = DecodeTail(num_kv_heads=4, capacity=512, head_dim=128, dtype=torch.bfloat16, device="cuda")
    tail.append(k_new, v_new)                                  # [Hkv, d] each, before attending
    out = decode_attention(q, packed, tail, scale=128 ** -0.5)  # [Hq, d]
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels import use_triton
from omnivideo.kernels.triton_support import check_device, check_last_dim_contiguous, online_softmax_step
from omnivideo.kernels.decode.kv_slimming import PackedKV
from omnivideo.kernels.decode.reference import tail_append_reference
from omnivideo.kernels.decode.tail_append import tail_append

LOG2_E = 1.4426950408889634


class DecodeTail:
    """Static K/V buffers for tokens generated during decoding (CUDA-graph friendly).

    k, v    [Hkv, capacity, d]
    length  [1] int32 on the device: valid rows. It only changes on the device (append), so a graph
            that captured `append` + `decode_attention` stays valid for every step.
    """

    def __init__(self, num_kv_heads: int, capacity: int, head_dim: int, *, dtype: torch.dtype,
                 device: torch.device | str):
        self.k = torch.zeros(num_kv_heads, capacity, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.length = torch.zeros(1, dtype=torch.int32, device=device)

    @property
    def capacity(self) -> int:
        return self.k.shape[1]

    def append(self, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
        """Write t new tokens at rows length..length+t-1 and advance length, without a host sync.

        Args:
            k_new, v_new: [Hkv, d] (one token) or [Hkv, t, d].
        One launch of `omnivideo.kernels.decode.tail_append` where the kernel switch says Triton, else its reference.
        Overflow raises IndexError on CPU (the length is on the host there); on a GPU, where reading it
        would sync, rows past the capacity are dropped and the length stops there. The engine sizes the
        capacity from the maximum number of new tokens.
        """
        hkv, _, d = self.k.shape
        k_new, v_new = k_new.reshape(hkv, -1, d), v_new.reshape(hkv, -1, d)
        if self.k.device.type == "cpu" and int(self.length) + k_new.shape[1] > self.capacity:
            raise IndexError(f"decode tail full: {int(self.length)} + {k_new.shape[1]} > {self.capacity} rows")
        if use_triton(self.k.device, self.k.dtype):
            tail_append(k_new, v_new, self.k, self.v, self.length)
        else:
            tail_append_reference(k_new, v_new, self.k, self.v, self.length)

    def reset(self) -> None:
        """Forget the generated tokens (next question); buffers keep their addresses."""
        self.length.zero_()


@triton.jit
def _online_softmax_step(acc, m_i, l_i, b_q, b_k, b_v, m_n, qk_scale, DOT_PRECISION: tl.constexpr):
    """Fold one key tile into the running (acc [G, D], m_i [G], l_i [G]) of the group; base-2 softmax."""
    b_s = tl.dot(b_q, tl.trans(b_k), input_precision=DOT_PRECISION)  # [G, N], scaled inside the step
    b_s = tl.where(m_n[None, :], b_s, float("-inf"))  # every tile has at least one valid key
    return online_softmax_step(acc, m_i, l_i, b_s, qk_scale, b_v, DOT_PRECISION)


@triton.jit
def _decode_split_kernel(
    Q, PK, PV, Offsets, Ends, TK, TV, TailLen, OPart, LsePart,  #
    stride_qh, stride_pk, stride_pv,  #
    stride_tkh, stride_tkn, stride_tvh, stride_tvn,  #
    stride_oh, stride_os, stride_lh,  #
    qk_scale, NUM_SPLITS,  #
    GROUP: tl.constexpr, HEAD_DIM: tl.constexpr,  #
    BLOCK_G: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,  #
    DOT_PRECISION: tl.constexpr,  #
):
    i_u = tl.program_id(0)  # KV head
    i_s = tl.program_id(1)  # split
    o_g = tl.arange(0, BLOCK_G)
    o_d = tl.arange(0, BLOCK_D)
    o_n = tl.arange(0, BLOCK_N)
    m_g = o_g < GROUP
    m_d = o_d < HEAD_DIM
    # load the group's queries: they stay in registers for the whole split
    p_q = Q + (i_u * GROUP + o_g)[:, None] * stride_qh + o_d[None, :]
    b_q = tl.load(p_q, mask=m_g[:, None] & m_d[None, :], other=0.0)  # [G, D]

    # -- this split's share of the head's keys: packed rows, then tail rows --
    row0 = tl.load(Offsets + i_u)
    n_packed = tl.load(Ends + i_u) - row0  # Ends = Offsets + 1 when packed without gaps
    n_total = n_packed + tl.load(TailLen)
    chunk = tl.cdiv(tl.cdiv(n_total, NUM_SPLITS), BLOCK_N) * BLOCK_N
    start = i_s * chunk
    end = tl.minimum(start + chunk, n_total)

    m_i = tl.full([BLOCK_G], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_G], dtype=tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], dtype=tl.float32)

    # -- packed part: rows row0 + [start, min(end, n_packed)) --
    hi = tl.minimum(end, n_packed)
    for n0 in range(start, hi, BLOCK_N):
        m_n = (n0 + o_n) < hi
        m_kv = m_n[:, None] & m_d[None, :]
        b_k = tl.load(PK + (row0 + n0 + o_n)[:, None] * stride_pk + o_d[None, :], mask=m_kv, other=0.0)  # [N, D]
        b_v = tl.load(PV + (row0 + n0 + o_n)[:, None] * stride_pv + o_d[None, :], mask=m_kv, other=0.0)
        acc, m_i, l_i = _online_softmax_step(acc, m_i, l_i, b_q, b_k, b_v, m_n, qk_scale, DOT_PRECISION)

    # -- tail part: combined positions [max(start, n_packed), end) are tail rows minus n_packed --
    t_hi = end - n_packed
    for t0 in range(tl.maximum(start, n_packed) - n_packed, t_hi, BLOCK_N):
        m_n = (t0 + o_n) < t_hi
        m_kv = m_n[:, None] & m_d[None, :]
        p_k = TK + i_u * stride_tkh + (t0 + o_n)[:, None] * stride_tkn + o_d[None, :]
        p_v = TV + i_u * stride_tvh + (t0 + o_n)[:, None] * stride_tvn + o_d[None, :]
        b_k = tl.load(p_k, mask=m_kv, other=0.0)  # [N, D]
        b_v = tl.load(p_v, mask=m_kv, other=0.0)
        acc, m_i, l_i = _online_softmax_step(acc, m_i, l_i, b_q, b_k, b_v, m_n, qk_scale, DOT_PRECISION)

    # epilogue: an empty split (no keys) writes lse = -inf and a zero partial, which the merge ignores
    has_keys = l_i > 0.0
    b_o = acc / tl.where(has_keys, l_i, 1.0)[:, None]
    b_lse = tl.where(has_keys, m_i + tl.log2(tl.where(has_keys, l_i, 1.0)), float("-inf"))
    i_h = i_u * GROUP + o_g
    p_o = OPart + i_h[:, None] * stride_oh + i_s * stride_os + o_d[None, :]
    tl.store(p_o, b_o, mask=m_g[:, None] & m_d[None, :])
    tl.store(LsePart + i_h * stride_lh + i_s, b_lse, mask=m_g)


@triton.jit
def _merge_splits_kernel(
    OPart, LsePart, Out,  #
    stride_oh, stride_os, stride_lh, stride_outh,  #
    NUM_SPLITS, HEAD_DIM: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,  #
):
    i_h = tl.program_id(0)  # query head
    o_s = tl.arange(0, BLOCK_S)
    o_d = tl.arange(0, BLOCK_D)
    m_s = o_s < NUM_SPLITS
    m_d = o_d < HEAD_DIM
    b_lse = tl.load(LsePart + i_h * stride_lh + o_s, mask=m_s, other=float("-inf"))  # [S]
    m = tl.max(b_lse, 0)
    m = tl.where(m == float("-inf"), 0.0, m)  # no keys at all: every weight is 0 and the output 0
    b_w = tl.exp2(b_lse - m)  # [S]
    den = tl.sum(b_w, 0)
    p_o = OPart + i_h * stride_oh + o_s[:, None] * stride_os + o_d[None, :]
    b_o = tl.load(p_o, mask=m_s[:, None] & m_d[None, :], other=0.0)  # [S, D]
    b_out = tl.sum(b_w[:, None] * b_o, 0) / tl.where(den > 0.0, den, 1.0)
    tl.store(Out + i_h * stride_outh + o_d, b_out.to(Out.dtype.element_ty), mask=m_d)


def default_num_splits(packed: PackedKV, tail: DecodeTail | None, block_n: int, device: torch.device) -> int:
    """Splits per KV head: enough programs to fill the GPU, at least a few key tiles each.

    Depends only on sizes fixed for a question (packed lengths, tail capacity), not on the step.
    """
    longest = max(packed.lengths, default=0) + (tail.capacity if tail is not None else 0)
    tiles = max(1, triton.cdiv(longest, block_n))
    if device.type != "cuda":
        return min(4, tiles)  # interpreter: programs run one at a time, fewer is faster
    programs_wanted = 2 * torch.cuda.get_device_properties(device).multi_processor_count
    per_head = triton.cdiv(programs_wanted, packed.num_kv_heads)
    return max(1, min(per_head, triton.cdiv(tiles, 4), 128))  # >= 4 tiles per split


def decode_attention(q: torch.Tensor, packed: PackedKV, tail: DecodeTail | None, *, scale: float,
                     num_splits: int | None = None, block_n: int = 64) -> torch.Tensor:
    """Attention of one token per query head over its KV head's packed slimmed KV plus the tail.

    Args:
        q: [Hq, d]; query head h reads KV head h // (Hq / Hkv).
        packed: per-head packed KV (`omnivideo.kernels.decode.kv_slimming.pack_kv`); keep = all gives dense decoding.
        tail: generated tokens shared by all heads, or None.
        scale: softmax scale.
        num_splits: programs per KV head; None picks from the packed lengths and tail capacity.
        block_n: keys per tile (power of 2, >= 16).
    Returns:
        [Hq, d] in q's dtype; a head with no keys returns zeros.
    """
    hq, d = q.shape
    hkv = packed.num_kv_heads
    assert hq % hkv == 0, f"Hq={hq} is not a multiple of Hkv={hkv}"
    assert packed.k.shape[1] == d and packed.k.shape == packed.v.shape
    assert packed.k.dtype == packed.v.dtype == q.dtype, "q and the packed KV must share a dtype"
    assert packed.offsets.dtype == torch.int32 and packed.offsets.shape == (hkv + 1,)
    assert block_n >= 16 and block_n & (block_n - 1) == 0, f"block_n must be a power of 2 >= 16, got {block_n}"
    check_last_dim_contiguous(q=q, packed_k=packed.k, packed_v=packed.v)
    if tail is None:  # an empty tail keeps one kernel signature (1 row: no null pointers in the launch)
        tail = DecodeTail(hkv, 1, d, dtype=q.dtype, device=q.device)
    assert tail.k.shape[0] == hkv and tail.k.shape[2] == d and tail.k.dtype == q.dtype
    check_last_dim_contiguous(tail_k=tail.k, tail_v=tail.v)
    ends = packed.head_ends
    assert ends.dtype == torch.int32 and ends.shape == (hkv,)
    check_device(q, packed.k, packed.v, packed.offsets, ends, tail.k, tail.v, tail.length)
    if num_splits is None:
        num_splits = default_num_splits(packed, tail, block_n, q.device)
    assert num_splits >= 1

    group = hq // hkv
    o_part = torch.empty(hq, num_splits, d, dtype=torch.float32, device=q.device)
    lse_part = torch.empty(hq, num_splits, dtype=torch.float32, device=q.device)
    out = torch.empty(hq, d, dtype=q.dtype, device=q.device)
    block_d = max(16, triton.next_power_of_2(d))
    # fp32 inputs: exact products (tf32 would cost ~1e-3 relative); fp16/bf16 use the tensor cores anyway.
    precision = "ieee" if q.dtype == torch.float32 else "tf32"
    _decode_split_kernel[(hkv, num_splits)](
        q, packed.k, packed.v, packed.offsets, ends, tail.k, tail.v, tail.length, o_part, lse_part,  #
        q.stride(0), packed.k.stride(0), packed.v.stride(0),  #
        tail.k.stride(0), tail.k.stride(1), tail.v.stride(0), tail.v.stride(1),  #
        o_part.stride(0), o_part.stride(1), lse_part.stride(0),  #
        scale * LOG2_E, num_splits,  #
        GROUP=group, HEAD_DIM=d,  #
        BLOCK_G=max(16, triton.next_power_of_2(group)), BLOCK_D=block_d, BLOCK_N=block_n,  #
        DOT_PRECISION=precision, num_warps=4,  #
    )
    _merge_splits_kernel[(hq,)](
        o_part, lse_part, out,  #
        o_part.stride(0), o_part.stride(1), lse_part.stride(0), out.stride(0),  #
        num_splits, HEAD_DIM=d, BLOCK_S=triton.next_power_of_2(num_splits), BLOCK_D=block_d,  #
        num_warps=1 if block_d <= 64 else 2,  #
    )
    return out
