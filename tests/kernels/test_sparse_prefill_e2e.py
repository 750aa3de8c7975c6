"""`sparse_attention` end to end: exact at full budget, chunk-invariant, text rows dense, fallback."""
import dataclasses

import pytest
import torch

from conftest import DEVICE, assert_close
from omnivideo.kernels.sparse_prefill.reference import (block_lists_reference, block_sparse_attention_reference,
                                              estimate_reference)
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams, sparse_attention
from sparse_prefill_inputs import local_qkv

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}
SHAPES = [(2, 2, 333, 0), (8, 2, 333, 128), (7, 1, 200, 64)]
SPARSE = SparseParams(block_size=16, window=64, gamma=0.6, theta_local=0.8, min_blocks=2, dense_fallback=1.0)


def _sdpa(q, k, v, q_offset):
    """Dense causal attention in fp32 with queries at q_offset.. (bottom-right aligned mask)."""
    g = q.shape[0] // k.shape[0]
    nq, nk = q.shape[1], k.shape[1]
    mask = torch.arange(nk, device=q.device)[None, :] <= q_offset + torch.arange(nq, device=q.device)[:, None]
    return torch.nn.functional.scaled_dot_product_attention(
        q.float(), k.float().repeat_interleave(g, 0), v.float().repeat_interleave(g, 0), attn_mask=mask)


@pytest.mark.parametrize("fallback", [0.6, 1.0], ids=["fallback_on", "fallback_off"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv,nk,q_offset", SHAPES, ids=str)
def test_full_budget_equals_dense_sdpa(hq, hkv, nk, q_offset, dtype, fallback):
    q, k, v = local_qkv(hq, hkv, nk, 32, dtype, DEVICE)
    q = q[:, q_offset:]
    params = SparseParams(block_size=16, window=64, gamma=1.0, dense_fallback=fallback)
    out, lse, lists = sparse_attention(q, k, v, q_offset=q_offset, params=params, scale=32 ** -0.5)
    assert lists.density == 1.0 and lists.dense == (fallback < 1.0) and not lists.lazy.any()
    assert_close("out", out, _sdpa(q, k, v, q_offset), rel_rms=TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv,nk,q_offset", SHAPES, ids=str)
def test_sparse_path_matches_reference_pipeline(hq, hkv, nk, q_offset, dtype):
    q, k, v = local_qkv(hq, hkv, nk, 32, dtype, DEVICE)
    q = q[:, q_offset:]
    out, lse, lists = sparse_attention(q, k, v, q_offset=q_offset, params=SPARSE, scale=32 ** -0.5)
    est = estimate_reference(q, k, q_offset=q_offset, params=SPARSE, scale=32 ** -0.5)
    ref_lists = block_lists_reference(est, q_offset=q_offset, Nk=nk, params=SPARSE)
    assert not lists.dense and lists.density < 0.9
    assert lists.density == pytest.approx(ref_lists.density, abs=0.02)   # cover-count near-ties only
    ref_out, ref_lse = block_sparse_attention_reference(q, k, v, lists, q_offset=q_offset, scale=32 ** -0.5)
    assert_close("out", out, ref_out, rel_rms=TOL[dtype])
    assert_close("lse", lse, ref_lse, rel_rms=TOL[dtype])


@pytest.mark.parametrize("hq,hkv", [(2, 2), (8, 2), (7, 1)], ids=str)
def test_two_chunks_equal_one_pass(hq, hkv):
    """Per-row decisions depend only on the row: a chunk split at a block boundary changes nothing."""
    q, k, v = local_qkv(hq, hkv, 333, 32, torch.float32, DEVICE, seed=3)
    whole, whole_lse, lists = sparse_attention(q, k, v, q_offset=0, params=SPARSE, scale=32 ** -0.5)
    split = 160
    first, lse1, lists1 = sparse_attention(q[:, :split], k[:, :split], v[:, :split], q_offset=0, params=SPARSE,
                                           scale=32 ** -0.5)
    second, lse2, lists2 = sparse_attention(q[:, split:], k, v, q_offset=split, params=SPARSE, scale=32 ** -0.5)
    assert torch.equal(torch.cat([lists1.block_count, lists2.block_count], 1), lists.block_count)
    assert_close("out", torch.cat([first, second], 1), whole, rel_rms=1e-6)
    assert_close("lse", torch.cat([lse1, lse2], 1), whole_lse, rel_rms=1e-6)


def test_text_rows_are_dense_and_exact():
    q, k, v = local_qkv(8, 2, 333, 32, torch.float32, DEVICE)
    mq = -(-333 // 16)
    text = torch.zeros(mq, dtype=torch.bool, device=DEVICE)
    text[[5, mq - 1]] = True
    out, _, lists = sparse_attention(q, k, v, q_offset=0, params=SPARSE, scale=32 ** -0.5, force_dense_rows=text)
    assert not lists.dense and lists.density < 0.9
    dense = _sdpa(q, k, v, 0)
    rows = torch.arange(333, device=DEVICE) // 16
    text_rows = text[rows]
    assert_close("text rows", out[:, text_rows], dense[:, text_rows], rel_rms=1e-5)
    assert (out[:, ~text_rows] - dense[:, ~text_rows]).abs().max() > 1e-4, "other rows should be sparse"


def test_fallback_runs_dense():
    q, k, v = local_qkv(8, 2, 333, 32, torch.float32, DEVICE)
    params = dataclasses.replace(SPARSE, dense_fallback=0.3)
    out, _, lists = sparse_attention(q, k, v, q_offset=0, params=params, scale=32 ** -0.5)
    assert lists.dense and lists.density == 1.0 and 0.3 < lists.sparse_density < 1.0
    assert_close("out", out, _sdpa(q, k, v, 0), rel_rms=1e-5)
