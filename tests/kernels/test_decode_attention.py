"""Split-K decode attention over a per-head packed KV + dense tail: kernel == reference == SDPA."""
import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, assert_close

from omnivideo.kernels.decode.decode_attention import DecodeTail, decode_attention
from omnivideo.kernels.decode.kv_slimming import SlimParams, alias_kv, keep_all, pack_kv, select_slim_tokens
from omnivideo.kernels.decode.reference import decode_attention_reference

TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}
DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]

# (Hq, Hkv, d, tokens in the full KV, kept per head, tail length, splits, block_n)
CASES = [
    (2, 2, 32, 80, (33, 80), 0, 1, 16),  # no GQA, one split, a dense head
    (8, 2, 64, 140, (3, 129), 5, 3, 16),  # GQA 4, a nearly empty head, tail straddles a split
    (14, 2, 48, 110, (1, 97), 17, 4, 32),  # GQA 7 (padded group), d not a power of 2
    (8, 4, 32, 60, (0, 7, 60, 31), 9, 2, 16),  # a head with no packed rows reads only the tail
    (4, 1, 64, 300, (257,), 3, 8, 64),  # many splits, some empty
]


def make_case(hq, hkv, d, n, kept, tail_len, dtype, seed=0):
    """Random q [Hq, d], KV [Hkv, N, d] packed with `kept[u]` random tokens per head, tail of tail_len."""
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(hq, d, generator=gen).to(DEVICE, dtype)
    k = torch.randn(hkv, n, d, generator=gen).to(DEVICE, dtype)
    v = torch.randn(hkv, n, d, generator=gen).to(DEVICE, dtype)
    keep = [torch.randperm(n, generator=gen)[:m].sort().values.to(DEVICE) for m in kept]
    tail = DecodeTail(hkv, max(tail_len, 1) + 4, d, dtype=dtype, device=DEVICE)
    if tail_len:
        tail.append(torch.randn(hkv, tail_len, d, generator=gen).to(DEVICE, dtype),
                    torch.randn(hkv, tail_len, d, generator=gen).to(DEVICE, dtype))
    return q, pack_kv(k, v, keep), tail


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "Hq{}-Hkv{}-d{}-N{}-keep{}-tail{}-S{}-BN{}".format(*c))
def test_kernel_matches_reference(case, dtype):
    hq, hkv, d, n, kept, tail_len, splits, block_n = case
    q, packed, tail = make_case(hq, hkv, d, n, kept, tail_len, dtype)
    expected = decode_attention_reference(q, packed, tail, scale=d ** -0.5)
    actual = decode_attention(q, packed, tail, scale=d ** -0.5, num_splits=splits, block_n=block_n)
    assert actual.dtype == dtype and actual.shape == (hq, d)
    assert_close("out", actual, expected, rel_rms=TOL[dtype])


def test_head_without_keys_returns_zeros():
    q, packed, tail = make_case(4, 2, 32, 40, (0, 17), 0, torch.float32)
    out = decode_attention(q, packed, tail, scale=0.2, num_splits=2, block_n=16)
    assert torch.equal(out[:2], torch.zeros_like(out[:2]))
    assert_close("head 1", out[2:], decode_attention_reference(q, packed, tail, scale=0.2)[2:], rel_rms=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dense_selection_equals_sdpa(dtype):
    """gamma_decode = 1 keeps everything: one decode query equals SDPA over [prefix KV, tail KV]."""
    hq, hkv, n, d, t = 8, 2, 90, 32, 6
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(hq, d, generator=gen).to(DEVICE, dtype)
    k, v = (torch.randn(hkv, n + t, d, generator=gen).to(DEVICE, dtype) for _ in range(2))
    visual = torch.zeros(n, dtype=torch.bool, device=DEVICE)
    visual[4:70] = True
    obs_attn = torch.softmax(torch.randn(hq, 3, n, generator=gen), dim=-1).to(DEVICE)
    keep = select_slim_tokens(obs_attn, visual, SlimParams(gamma_decode=1.0, min_tokens=0), num_kv_heads=hkv)
    packed = pack_kv(k[:, :n], v[:, :n], keep)
    assert packed.lengths == (n, n)
    tail = DecodeTail(hkv, t, d, dtype=dtype, device=DEVICE)
    tail.append(k[:, n:], v[:, n:])
    out = decode_attention(q, packed, tail, scale=d ** -0.5, num_splits=3, block_n=16)
    expected = F.scaled_dot_product_attention(
        q[:, None, None].float(), k.repeat_interleave(hq // hkv, 0)[:, None].float(),
        v.repeat_interleave(hq // hkv, 0)[:, None].float())[:, 0, 0]
    assert_close("vs sdpa", out, expected, rel_rms=TOL[dtype])
    dense = decode_attention(q, pack_kv(k[:, :n], v[:, :n], keep_all(hkv, n, DEVICE)), tail, scale=d ** -0.5)
    assert_close("vs keep_all", out, dense, rel_rms=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_aliased_cache_equals_packed_copy(dtype):
    """alias_kv reads a cache's [Hkv, capacity, d] buffers in place: rows past n (stale) are never read."""
    hq, hkv, n, cap, d, t = 8, 2, 70, 96, 32, 3
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(hq, d, generator=gen).to(DEVICE, dtype)
    k_buf, v_buf = (torch.randn(hkv, cap, d, generator=gen).to(DEVICE, dtype) for _ in range(2))
    k_buf[:, n:], v_buf[:, n:] = 1e4, 1e4  # stale rows: reading one would swamp the result
    aliased = alias_kv(k_buf, v_buf, n)
    assert aliased.aliased and aliased.lengths == (n, n) and aliased.k.data_ptr() == k_buf.data_ptr()
    tail = DecodeTail(hkv, t, d, dtype=dtype, device=DEVICE)
    tail.append(torch.randn(hkv, t, d, generator=gen).to(DEVICE, dtype),
                torch.randn(hkv, t, d, generator=gen).to(DEVICE, dtype))
    copied = pack_kv(k_buf[:, :n], v_buf[:, :n], None)
    expected = decode_attention_reference(q, copied, tail, scale=d ** -0.5)
    assert_close("reference over the alias", decode_attention_reference(q, aliased, tail, scale=d ** -0.5),
                 expected, rel_rms=1e-6)
    for splits in (1, 3):
        out = decode_attention(q, aliased, tail, scale=d ** -0.5, num_splits=splits, block_n=16)
        assert_close(f"kernel, {splits} splits", out, expected, rel_rms=TOL[dtype])


def test_tail_grows_step_by_step_with_fixed_launch():
    """Append then attend, as the decode loop does: same splits every step, lengths read on the device."""
    hq, hkv, d = 4, 2, 32
    q, packed, tail = make_case(hq, hkv, d, 50, (21, 44), 0, torch.float32, seed=3)
    gen = torch.Generator().manual_seed(4)
    for step in range(5):
        tail.append(torch.randn(hkv, d, generator=gen).to(DEVICE), torch.randn(hkv, d, generator=gen).to(DEVICE))
        assert int(tail.length) == step + 1
        actual = decode_attention(q, packed, tail, scale=0.3, num_splits=2, block_n=16)
        assert_close(f"step {step}", actual, decode_attention_reference(q, packed, tail, scale=0.3), rel_rms=1e-5)
    tail.reset()
    assert int(tail.length) == 0
    assert_close("after reset", decode_attention(q, packed, tail, scale=0.3),
                 decode_attention_reference(q, packed, None, scale=0.3), rel_rms=1e-5)


def test_tail_append_writes_rows_in_order():
    tail = DecodeTail(2, 4, 8, dtype=torch.float32, device="cpu")
    a, b = torch.randn(2, 8), torch.randn(2, 3, 8)
    tail.append(a, -a)
    tail.append(b, -b)
    assert int(tail.length) == 4 and tail.length.dtype == torch.int32
    assert torch.equal(tail.k[:, 0], a) and torch.equal(tail.k[:, 1:], b) and torch.equal(tail.v[:, 1:], -b)
    with pytest.raises(IndexError):
        tail.append(a, a)  # full


@pytest.mark.gpu
def test_cuda_graph_replays_while_tail_grows():
    """Capture append + attention once; each replay sees one more tail token (lengths live on the device)."""
    hq, hkv, d = 28, 4, 128
    q, packed, tail = make_case(hq, hkv, d, 3000, (2500, 700, 3000, 256), 0, torch.bfloat16)
    k_new = torch.zeros(hkv, d, dtype=torch.bfloat16, device=DEVICE)
    v_new = torch.zeros_like(k_new)
    decode_attention(q, packed, tail, scale=d ** -0.5)  # compile outside the capture
    tail.reset()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        tail.append(k_new, v_new)
        out = decode_attention(q, packed, tail, scale=d ** -0.5)
    tail.reset()  # capture does not run the work
    for step in range(4):
        k_new.copy_(torch.randn_like(k_new))
        v_new.copy_(torch.randn_like(v_new))
        graph.replay()
        assert int(tail.length) == step + 1
        assert_close(f"replay {step}", out, decode_attention_reference(q, packed, tail, scale=d ** -0.5), 2e-2)
