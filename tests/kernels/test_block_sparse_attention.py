"""Triton `block_sparse_attention` against its PyTorch reference and dense SDPA."""
import pytest
import torch

from conftest import DEVICE, assert_close
from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention
from omnivideo.kernels.sparse_prefill.reference import block_sparse_attention_reference
from sparse_prefill_inputs import local_qkv, random_lists

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
# (hq, hkv, Nk, q_offset): GQA ratios 1 / 4 / 7, odd lengths, chunks after earlier keys
SHAPES = [(2, 2, 333, 0), (8, 2, 333, 128), (7, 1, 200, 64)]
TILES = [(128, 1), (64, 2)]      # (BLOCK_M, key blocks per tile): padded rows / two-block key tiles


def _case(hq, hkv, nk, q_offset, dtype, d=32, block=16, keep=0.4, seed=0):
    q, k, v = local_qkv(hq, hkv, nk, d, dtype, DEVICE, seed)
    q = q[:, q_offset:]
    return q, k, v, random_lists(hkv, q.shape[1], nk, block, keep, DEVICE, seed)


def _dense_causal(q, k, v, q_offset, scale):
    """fp32 SDPA with a bottom-right causal mask (queries start at q_offset) and its LSE."""
    g = q.shape[0] // k.shape[0]
    qf, kf, vf = q.float(), k.float().repeat_interleave(g, 0), v.float().repeat_interleave(g, 0)
    nq, nk = q.shape[1], k.shape[1]
    mask = torch.arange(nk, device=q.device)[None, :] <= q_offset + torch.arange(nq, device=q.device)[:, None]
    out = torch.nn.functional.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask, scale=scale)
    s = (qf @ kf.transpose(1, 2) * scale).masked_fill(~mask, float("-inf"))
    return out, torch.logsumexp(s, -1)


@pytest.mark.parametrize("tile", TILES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv,nk,q_offset", SHAPES, ids=str)
def test_matches_reference(hq, hkv, nk, q_offset, dtype, tile):
    q, k, v, lists = _case(hq, hkv, nk, q_offset, dtype)
    assert 0.3 < lists.density < 0.8
    out, lse = block_sparse_attention(q, k, v, lists, q_offset=q_offset, scale=32 ** -0.5, block_m=tile[0],
                                      blocks_per_tile=tile[1])
    ref_out, ref_lse = block_sparse_attention_reference(q, k, v, lists, q_offset=q_offset, scale=32 ** -0.5)
    assert out.dtype == dtype and lse.dtype == torch.float32
    assert_close("out", out, ref_out, rel_rms=TOL[dtype])
    assert_close("lse", lse, ref_lse, rel_rms=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv,nk,q_offset", SHAPES, ids=str)
def test_all_blocks_equal_dense_sdpa(hq, hkv, nk, q_offset, dtype):
    q, k, v, lists = _case(hq, hkv, nk, q_offset, dtype, keep=1.0)
    out, lse = block_sparse_attention(q, k, v, lists, q_offset=q_offset, scale=32 ** -0.5, block_m=64,
                                      blocks_per_tile=4)
    ref_out, ref_lse = _dense_causal(q, k, v, q_offset, 32 ** -0.5)
    assert_close("out", out, ref_out, rel_rms=TOL[dtype])
    assert_close("lse", lse, ref_lse, rel_rms=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv", [(8, 2), (7, 1)], ids=str)
def test_autotuned_tile_blocks_of_64(hq, hkv, dtype):
    """Default launch path; g = 7 splits its 448 rows into 128-row tiles plus a 64-row tail launch."""
    q, k, v, lists = _case(hq, hkv, 333, 64, dtype, d=64, block=64, keep=0.5, seed=1)
    out, lse = block_sparse_attention(q, k, v, lists, q_offset=64, scale=64 ** -0.5)
    ref_out, ref_lse = block_sparse_attention_reference(q, k, v, lists, q_offset=64, scale=64 ** -0.5)
    assert_close("out", out, ref_out, rel_rms=TOL[dtype])
    assert_close("lse", lse, ref_lse, rel_rms=TOL[dtype])


@pytest.mark.parametrize("block_m", [128, 64])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tma_key_loads_match_reference(dtype, block_m):
    """K/V tiles through TMA descriptors over [Hkv * Nk, d]: the partial last block of a head reads
    into the next head's rows, which the diagonal mask must hide."""
    q, k, v, lists = _case(8, 2, 333, 128, dtype, keep=0.5, seed=2)
    out, lse = block_sparse_attention(q, k, v, lists, q_offset=128, scale=32 ** -0.5, block_m=block_m,
                                      use_tma=True)
    ref_out, ref_lse = block_sparse_attention_reference(q, k, v, lists, q_offset=128, scale=32 ** -0.5)
    assert_close("out", out, ref_out, rel_rms=TOL[dtype])
    assert_close("lse", lse, ref_lse, rel_rms=TOL[dtype])


def test_strided_inputs():
    """Transformers hands over [B, H, T, d] views of [B, T, H, d]: head and token strides differ."""
    q, k, v, lists = _case(8, 2, 200, 0, torch.float32)
    qt, kt, vt = (x.transpose(0, 1).contiguous().transpose(0, 1) for x in (q, k, v))
    assert not qt.is_contiguous()
    out, lse = block_sparse_attention(qt, kt, vt, lists, q_offset=0, scale=0.2, block_m=64, blocks_per_tile=2)
    ref_out, ref_lse = block_sparse_attention_reference(q, k, v, lists, q_offset=0, scale=0.2)
    assert_close("out", out, ref_out, rel_rms=1e-5)
    assert_close("lse", lse, ref_lse, rel_rms=1e-5)


@pytest.mark.parametrize("bad", ["head_dim", "heads", "offset", "dtype"])
def test_launcher_rejects_bad_inputs(bad):
    q, k, v, lists = _case(8, 2, 200, 0, torch.float32)
    q_offset = 0
    if bad == "head_dim":
        q = q[..., :24]
    elif bad == "heads":
        q = q[:7]
    elif bad == "offset":
        q, q_offset = q[:, 8:], 8
    else:
        v = v.half()
    with pytest.raises(AssertionError):
        block_sparse_attention(q, k, v, lists, q_offset=q_offset, scale=0.2)


class _Failing:
    """Stands in for the TMA-capable autotuned kernel: its launch raises `error`."""

    def __init__(self, error):
        self.error = error

    def __getitem__(self, grid):
        def launch(*args, **kwargs):
            raise self.error
        return launch


@pytest.mark.parametrize("error, falls_back", [(RuntimeError("PassManager::run failed"), True),
                                               (torch.OutOfMemoryError("CUDA out of memory"), False)],
                         ids=["build-failure", "out-of-memory"])
def test_only_a_build_failure_of_the_tma_variant_falls_back(monkeypatch, error, falls_back):
    import omnivideo.kernels.sparse_prefill.block_sparse_attention as bsa

    q, k, v, lists = _case(8, 2, 200, 0, torch.float32)
    monkeypatch.setattr(bsa, "_attn_kernel_tuned", _Failing(error))
    monkeypatch.setattr(bsa, "_descriptors", lambda k, v, B: [k, v])   # as if TMA applied here
    monkeypatch.setattr(bsa, "_tma_failed", False)
    if falls_back:
        out, _ = block_sparse_attention(q, k, v, lists, q_offset=0, scale=0.2)
        ref, _ = block_sparse_attention_reference(q, k, v, lists, q_offset=0, scale=0.2)
        assert_close("out", out, ref, rel_rms=1e-5)
        assert bsa._tma_failed
    else:
        with pytest.raises(torch.OutOfMemoryError):
            block_sparse_attention(q, k, v, lists, q_offset=0, scale=0.2)
        assert not bsa._tma_failed      # an out-of-memory is not a verdict on the variant
