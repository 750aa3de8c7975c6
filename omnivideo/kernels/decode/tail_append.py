"""Append a decode step's K/V to the decode tail in one launch and advance its device-side length.

Why: the tail length lives on the device (a captured CUDA graph replays the step while the tail
grows), and appending with torch ops took six kernels per layer (arange, casts, two index_copy_,
the length add): ~10 µs of a ~5 ms 7B step per layer, 0.27 ms per token over 28 layers on an H100
(docs/decode_engine.md). Here one program writes every head's new rows at `length` and then
advances it: Hkv x t x d is a few KB, and a single program needs no synchronization between
programs to read the length before it changes (a barrier orders its own threads).

    tail_append(k_new, v_new, k_buf, v_buf, length)   # k_new [Hkv, t, d]; k_buf [Hkv, capacity, d]; length [1] int32
The spec is `omnivideo.kernels.decode.reference.tail_append_reference`. Rows past the capacity are not written
and the length stops at the capacity (the engine sizes the tail from max_new_tokens).
"""
import torch
import triton
import triton.language as tl

from omnivideo.kernels.triton_support import check_device


@triton.jit
def _tail_append_kernel(KN, VN, KB, VB, Length, T, CAP,  #
                        s_knh, s_knt, s_vnh, s_vnt, s_kbh, s_kbn, s_vbh, s_vbn,  #
                        HKV: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_T: tl.constexpr,
                        BLOCK_D: tl.constexpr):
    n0 = tl.load(Length)
    o_h = tl.arange(0, BLOCK_H)[:, None, None]
    o_t = tl.arange(0, BLOCK_T)[None, :, None]
    o_d = tl.arange(0, BLOCK_D)[None, None, :]
    row = n0 + o_t
    mask = (o_h < HKV) & (o_t < T) & (o_d < HEAD_DIM)
    b_k = tl.load(KN + o_h * s_knh + o_t * s_knt + o_d, mask=mask)
    b_v = tl.load(VN + o_h * s_vnh + o_t * s_vnt + o_d, mask=mask)
    mask = mask & (row < CAP)
    tl.store(KB + o_h * s_kbh + row * s_kbn + o_d, b_k.to(KB.dtype.element_ty), mask=mask)
    tl.store(VB + o_h * s_vbh + row * s_vbn + o_d, b_v.to(VB.dtype.element_ty), mask=mask)
    tl.debug_barrier()  # every thread has read the old length before it changes
    tl.store(Length, tl.minimum(n0 + T, CAP))


def tail_append(k_new: torch.Tensor, v_new: torch.Tensor, k_buf: torch.Tensor, v_buf: torch.Tensor,
                length: torch.Tensor) -> None:
    """Write k_new/v_new [Hkv, t, d] at rows length..length+t-1 of k_buf/v_buf [Hkv, capacity, d]
    (cast to the buffers' dtype) and add t to length ([1] int32), all on the device."""
    hkv, cap, d = k_buf.shape
    assert k_new.dim() == 3 and k_new.shape[0] == hkv and k_new.shape[2] == d, (
        f"k_new must be [{hkv}, t, {d}], got {tuple(k_new.shape)}")
    assert v_new.shape == k_new.shape and v_buf.shape == k_buf.shape, "k/v shapes differ"
    assert k_new.stride(2) == 1 and v_new.stride(2) == 1 and k_buf.stride(2) == 1 and v_buf.stride(2) == 1, (
        "the head dim must be contiguous")
    assert length.dtype == torch.int32 and length.numel() == 1, "length must be [1] int32"
    check_device(k_new, v_new, k_buf, v_buf, length)
    t = k_new.shape[1]
    _tail_append_kernel[(1,)](
        k_new, v_new, k_buf, v_buf, length, t, cap,  #
        k_new.stride(0), k_new.stride(1), v_new.stride(0), v_new.stride(1),  #
        k_buf.stride(0), k_buf.stride(1), v_buf.stride(0), v_buf.stride(1),  #
        HKV=hkv, HEAD_DIM=d, BLOCK_H=triton.next_power_of_2(hkv), BLOCK_T=triton.next_power_of_2(t),
        BLOCK_D=triton.next_power_of_2(d), num_warps=4)
