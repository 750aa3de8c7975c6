"""The decode tail's one-launch append equals its reference: rows, casts, strides, length, overflow."""
import pytest
import torch

from conftest import DEVICE, requires_gpu
from omnivideo.kernels.decode.decode_attention import DecodeTail
from omnivideo.kernels.decode.reference import tail_append_reference
from omnivideo.kernels.decode.tail_append import tail_append

DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if DEVICE == "cuda" else [])


def _buffers(hkv, cap, d, dtype, start):
    gen = torch.Generator().manual_seed(1)
    k = torch.randn(hkv, cap, d, generator=gen).to(DEVICE, dtype)
    v = torch.randn(hkv, cap, d, generator=gen).to(DEVICE, dtype)
    return k, v, torch.tensor([start], dtype=torch.int32, device=DEVICE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hkv,t,d,cap,start", [(4, 1, 128, 9, 0), (2, 3, 64, 16, 5), (3, 1, 40, 7, 6),
                                               (4, 5, 32, 8, 6)])  # last: 3 of 5 rows overflow
def test_kernel_equals_reference(dtype, hkv, t, d, cap, start):
    gen = torch.Generator().manual_seed(2)
    # a [1, t, Hkv, d] -> [Hkv, t, d] transposed view, as the attention module hands over its K/V
    k_new = torch.randn(1, t, hkv, d, generator=gen).to(DEVICE, torch.float32)[0].transpose(0, 1)
    v_new = torch.randn(1, t, hkv, d, generator=gen).to(DEVICE, torch.float32)[0].transpose(0, 1)
    kb, vb, length = _buffers(hkv, cap, d, dtype, start)
    kr, vr, length_r = kb.clone(), vb.clone(), length.clone()
    tail_append(k_new, v_new, kb, vb, length)
    tail_append_reference(k_new, v_new, kr, vr, length_r)
    assert torch.equal(kb, kr) and torch.equal(vb, vr) and torch.equal(length, length_r)
    assert int(length) == min(start + t, cap)
    fit = min(t, cap - start)
    assert torch.equal(kb[:, start:start + fit], k_new[:, :fit].to(dtype))  # the reference itself, spelled out
    assert torch.equal(kb[:, :start], _buffers(hkv, cap, d, dtype, start)[0][:, :start])  # older rows untouched


def test_decode_tail_appends_step_after_step():
    tail = DecodeTail(2, 6, 16, dtype=torch.float32, device=DEVICE)
    rows = [torch.randn(2, 16).to(DEVICE) for _ in range(4)]
    for i, r in enumerate(rows):
        tail.append(r, -r)
        assert int(tail.length) == i + 1
    assert torch.equal(tail.k[:, :4], torch.stack(rows, dim=1)) and torch.equal(tail.v[:, :4], -tail.k[:, :4])
    tail.reset()
    tail.append(rows[3], rows[3])
    assert int(tail.length) == 1 and torch.equal(tail.k[:, 0], rows[3])


def test_launcher_rejects_bad_shapes():
    kb, vb, length = _buffers(2, 4, 16, torch.float32, 0)
    with pytest.raises(AssertionError, match="k_new must be"):
        tail_append(torch.zeros(3, 1, 16, device=DEVICE), torch.zeros(3, 1, 16, device=DEVICE), kb, vb, length)
    with pytest.raises(AssertionError, match="int32"):
        tail_append(torch.zeros(2, 1, 16, device=DEVICE), torch.zeros(2, 1, 16, device=DEVICE), kb, vb,
                    length.long())


@requires_gpu
def test_append_is_graph_capturable():
    tail = DecodeTail(4, 8, 128, dtype=torch.bfloat16, device=DEVICE)
    k = torch.randn(4, 128, device=DEVICE, dtype=torch.bfloat16)
    tail.append(k, k)  # compile outside the capture
    tail.reset()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        tail.append(k, k * 2)
    for step in range(3):
        k.add_(1)
        graph.replay()
    torch.cuda.synchronize()
    assert int(tail.length) == 3
    assert torch.equal(tail.k[:, 2], k) and torch.equal(tail.v[:, 2], k * 2)
