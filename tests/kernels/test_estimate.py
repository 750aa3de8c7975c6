"""Triton `estimate` / `select_blocks` (via `build_block_lists`) against the PyTorch reference."""
import dataclasses

import pytest
import torch

from conftest import DEVICE, assert_close
from omnivideo.kernels.sparse_prefill.estimate import estimate, pool_blocks
from omnivideo.kernels.sparse_prefill.reference import (block_lists_reference, block_mask_reference,
                                              block_windows_reference, estimate_reference, pool_reference)
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams, build_block_lists
from sparse_prefill_inputs import local_qkv

DTYPES = [torch.float32, torch.float16, pytest.param(torch.bfloat16, marks=pytest.mark.gpu)]
# (hq, hkv, Nk, q_offset): GQA ratios 1 / 4 / 7, odd lengths, chunks that start after earlier keys
SHAPES = [(2, 2, 333, 0), (8, 2, 333, 128), (7, 1, 200, 64)]
PARAMS = SparseParams(block_size=16, window=64, gamma=0.6, theta_local=0.8, min_blocks=2, dense_fallback=1.0)


def _inputs(hq, hkv, nk, q_offset, dtype, d=32, seed=0):
    q, k, v = local_qkv(hq, hkv, nk, d, dtype, DEVICE, seed)
    return q[:, q_offset:], k, v


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("n", [333, 64, 17])
def test_pool_matches_reference(n, dtype):
    x = torch.randn(3, n + 5, 32, device=DEVICE).to(dtype)[:, 5:]     # non-contiguous head stride
    assert_close("pool", pool_blocks(x, 16), pool_reference(x, 16), rel_rms=1e-6)


@pytest.mark.parametrize("pooled_keys", [False, True], ids=["keys", "pooled-keys"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv,nk,q_offset", SHAPES, ids=lambda x: str(x))
@pytest.mark.parametrize("splits,parts", [(None, 2), (3, 2), (None, 1), (None, 4)],
                         ids=["auto-splits", "3-splits", "1-part", "4-parts"])
def test_estimate_matches_reference(hq, hkv, nk, q_offset, dtype, pooled_keys, splits, parts):
    """Also with the keys split in 3 ranges (what a short chunk over a long prefix gets on a GPU: the
    splits' softmax statistics are combined before any probability is written) and with 1 or 4 pooled
    query parts per block (the partial last block has fewer parts with rows)."""
    q, k, _ = _inputs(hq, hkv, nk, q_offset, dtype)
    params = dataclasses.replace(PARAMS, pooled_keys=pooled_keys, query_parts=parts)
    est = estimate(q, k, q_offset=q_offset, params=params, scale=32 ** -0.5, splits=splits)
    ref = estimate_reference(q, k, q_offset=q_offset, params=params, scale=32 ** -0.5)
    tol = 1e-5 if dtype != torch.bfloat16 else 2e-2          # GPU: pooled scores use tf32 for 16-bit q
    assert_close("block_probs", est.block_probs, ref.block_probs, rel_rms=tol)
    assert_close("local_mass", est.local_mass, ref.local_mass, rel_rms=tol)
    sums = est.block_probs.sum(-1)
    assert_close("rows sum to 1", sums, torch.ones_like(sums), rel_rms=1e-5)
    _assert_cover_is_minimal(est.cover_count, ref, params, q_offset, rel_tol=10 * tol)


def test_one_strong_key_is_seen_where_block_means_dilute_it():
    """The estimate's block mass is the pooled query's mass on the block's keys: a single key that every
    query of a block attends to is found, where the mean of its block's keys (pooled_keys) hides it."""
    gen = torch.Generator().manual_seed(0)
    n, d, strong = 256, 32, 37                       # key 37 sits in block 2 among 15 unrelated keys
    q = torch.randn(1, n, d, generator=gen) * 0.1
    k = torch.randn(1, n, d, generator=gen)
    k[0, strong] = 0.0
    q[0, 192:] += 3.0 * torch.nn.functional.one_hot(torch.tensor(0), d).float()   # query blocks 12-15
    k[0, strong, 0] = 5.0
    params = SparseParams(block_size=16, window=32, gamma=0.9)
    keys = estimate(q.to(DEVICE), k.to(DEVICE), q_offset=0, params=params, scale=1.0)
    pooled = estimate(q.to(DEVICE), k.to(DEVICE), q_offset=0, params=dataclasses.replace(params, pooled_keys=True),
                      scale=1.0)
    assert (keys.block_probs[0, 12:, 2] > 0.9).all()
    assert (pooled.block_probs[0, 12:, 2] < 0.5).all()


def _assert_cover_is_minimal(count, ref, params, q_offset, rel_tol):
    """k is the fewest candidates whose mass reaches gamma x candidate mass, up to near-ties:
    top-k reaches the target within rel_tol, top-(k-1) falls short of it within rel_tol."""
    Hkv, Mq, Mk = ref.block_probs.shape
    _, _, cand = block_windows_reference(q_offset, Mq, Mk, params, ref.block_probs.device)
    vals = torch.where(cand, ref.block_probs, 0.0).sort(dim=-1, descending=True).values
    prefix = torch.cat([torch.zeros_like(vals[..., :1]), vals.cumsum(-1)], -1)     # prefix[n] = top-n mass
    total = prefix[..., -1]
    target = params.gamma * total
    k = count.long()
    assert (k <= cand.sum(-1)).all() and (k >= 0).all()
    reach = prefix.gather(-1, k[..., None])[..., 0]
    short = prefix.gather(-1, (k - 1).clamp_min(0)[..., None])[..., 0]
    tol = rel_tol * total + 1e-12
    assert (reach >= target - tol).all(), "cover count too small"
    assert ((k == 0) | (short < target + tol)).all(), "cover count not minimal"
    exact = (count == ref.cover_count).float().mean().item()
    assert exact >= 0.9, f"only {exact:.0%} of cover counts equal the reference"


def test_gamma_one_counts_every_candidate():
    q, k, _ = _inputs(8, 2, 333, 0, torch.float32)
    params = SparseParams(block_size=16, window=64, gamma=1.0)
    est = estimate(q, k, q_offset=0, params=params, scale=32 ** -0.5)
    _, _, cand = block_windows_reference(0, *est.block_probs.shape[1:], params, est.local_mass.device)
    assert torch.equal(est.cover_count.long(), cand.sum(-1).expand_as(est.cover_count))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hq,hkv,nk,q_offset", SHAPES, ids=lambda x: str(x))
def test_block_lists_match_reference(hq, hkv, nk, q_offset, dtype):
    q, k, _ = _inputs(hq, hkv, nk, q_offset, dtype)
    est = estimate(q, k, q_offset=q_offset, params=PARAMS, scale=32 ** -0.5)
    lists = build_block_lists(est, q_offset=q_offset, Nk=nk, params=PARAMS)
    ref = block_lists_reference(est, q_offset=q_offset, Nk=nk, params=PARAMS)
    assert not lists.dense and (lists.budget > 0).any(), "inputs must exercise top-K selection"
    assert torch.equal(lists.lazy, ref.lazy) and torch.equal(lists.budget, ref.budget)
    assert torch.equal(lists.flat, ref.flat)
    assert torch.equal(lists.block_count, ref.block_count)
    assert lists.density == pytest.approx(ref.density)
    _assert_well_formed(lists, q_offset, PARAMS)
    # top-K with near-ties may pick other blocks: the kept estimated mass must be the same
    Mk = est.block_probs.shape[-1]
    kept = (est.block_probs * block_mask_reference(lists, Mk)).sum(-1)
    kept_ref = (est.block_probs * block_mask_reference(ref, Mk)).sum(-1)
    assert_close("kept estimated mass", kept, kept_ref, rel_rms=1e-6)


def _assert_well_formed(lists, q_offset, params):
    """Ascending, -1 padded, diagonal last, sinks present, count matches."""
    idx, cnt = lists.block_idx.long(), lists.block_count.long()
    width = torch.arange(idx.shape[-1], device=idx.device)
    valid = width[None, None, :] < cnt[..., None]
    assert ((idx >= 0) == valid).all(), "padding must be -1 exactly after the count"
    assert (torch.where(valid[..., 1:], idx[..., 1:] - idx[..., :-1], 1) > 0).all(), "not strictly ascending"
    bi = q_offset // params.block_size + torch.arange(idx.shape[1], device=idx.device)
    assert torch.equal(idx.gather(-1, (cnt - 1)[..., None])[..., 0], bi.expand_as(cnt)), "diagonal not last"
    for s in range(params.sink_blocks):
        has = (idx == s).any(-1) | (bi < s)[None, :]
        assert has.all(), f"sink block {s} missing"


def test_lazy_rows_get_exactly_window_and_sinks():
    q, k, _ = _inputs(8, 2, 333, 0, torch.float32)
    params = SparseParams(block_size=16, window=64, gamma=0.6, theta_local=0.8, min_blocks=2, sink_blocks=2,
                          dense_fallback=1.0)
    est = estimate(q, k, q_offset=0, params=params, scale=32 ** -0.5)
    lists = build_block_lists(est, q_offset=0, Nk=333, params=params)
    Mk = est.block_probs.shape[-1]
    mask = block_mask_reference(lists, Mk)
    bi = torch.arange(lists.lazy.shape[1], device=mask.device)
    c = torch.arange(Mk, device=mask.device)
    lo = (bi * 16 - 64).clamp_min(0) // 16
    expected = ((c[None, :] >= lo[:, None]) | (c[None, :] < 2)) & (c[None, :] <= bi[:, None])
    assert lists.lazy.sum() >= 4
    for u, i in lists.lazy.nonzero().tolist():
        assert torch.equal(mask[u, i], expected[i]), f"lazy row {(u, i)}"
    active = ~lists.lazy & (lists.budget > 0)[None, :]
    assert (lists.block_count[active] == expected.sum(-1).expand_as(active)[active] +
            lists.budget.expand_as(active)[active]).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_flat_heads_run_dense_rows_and_never_keep_more(dtype):
    """Mechanism 2 with flat heads: a head whose cover count would raise the shared budget more than it
    saves attends to every causal block itself; the others share the flattest sparse head's budget."""
    q, k, _ = _inputs(8, 4, 333, 64, dtype, seed=3)
    params = dataclasses.replace(PARAMS, gamma=0.8, theta_local=0.95)
    est = estimate(q, k, q_offset=64, params=params, scale=32 ** -0.5)
    lists = build_block_lists(est, q_offset=64, Nk=333, params=params)
    ref = block_lists_reference(est, q_offset=64, Nk=333, params=params)
    first = build_block_lists(est, q_offset=64, Nk=333, params=dataclasses.replace(params, flat_heads=False))
    assert lists.flat.any() and not first.flat.any(), "inputs must make some heads flat"
    assert torch.equal(lists.flat, ref.flat) and torch.equal(lists.budget, ref.budget)
    assert torch.equal(lists.block_count, ref.block_count)
    causal_blocks = 64 // 16 + torch.arange(lists.flat.shape[1], device=DEVICE) + 1
    u, i = lists.flat.nonzero(as_tuple=True)
    assert torch.equal(lists.block_count[u, i], causal_blocks[i].int()), "flat rows attend every causal block"
    assert (lists.budget <= first.budget).all() and lists.density <= first.density + 1e-9
    # a flat head's cover count exceeds the budget of its query block; the sparse heads' do not
    sparse = ~lists.flat & ~lists.lazy
    assert (est.cover_count[u, i] > lists.budget[i]).all()
    assert (est.cover_count[sparse] <= lists.budget.expand_as(sparse)[sparse]).all()


def test_frame_window_is_twice_a_frame_group_and_at_least_the_default():
    assert SparseParams().for_frames(256).window == 512
    assert SparseParams().for_frames(600).window == 1200
    assert SparseParams(window=2048).for_frames(256).window == 2048


def test_force_dense_rows_attend_every_causal_block():
    q, k, _ = _inputs(8, 2, 333, 0, torch.float32)
    est = estimate(q, k, q_offset=0, params=PARAMS, scale=32 ** -0.5)
    rows = torch.zeros(est.local_mass.shape[1], dtype=torch.bool, device=DEVICE)
    rows[[3, 12, 20]] = True
    lists = build_block_lists(est, q_offset=0, Nk=333, params=PARAMS, force_dense_rows=rows)
    ref = block_lists_reference(est, q_offset=0, Nk=333, params=PARAMS, force_dense_rows=rows)
    bi = torch.arange(rows.numel(), device=DEVICE)
    assert torch.equal(lists.block_count[:, rows], (bi[rows] + 1).int().expand(2, 3))
    assert not lists.lazy[:, rows].any()
    assert torch.equal(lists.block_count, ref.block_count) and torch.equal(lists.lazy, ref.lazy)


def test_dense_fallback_flag():
    q, k, _ = _inputs(8, 2, 333, 0, torch.float32)
    est = estimate(q, k, q_offset=0, params=PARAMS, scale=32 ** -0.5)
    sparse = build_block_lists(est, q_offset=0, Nk=333, params=PARAMS)
    low = dataclasses.replace(PARAMS, dense_fallback=sparse.density - 0.01)
    dense = build_block_lists(est, q_offset=0, Nk=333, params=low)
    ref = block_lists_reference(est, q_offset=0, Nk=333, params=low)
    assert dense.dense and ref.dense and not sparse.dense
    assert dense.density == 1.0 and dense.sparse_density == pytest.approx(sparse.density)
    assert torch.equal(dense.block_count, ref.block_count) and torch.equal(dense.block_idx, ref.block_idx)


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_force_density_keeps_about_that_share(target):
    q, k, _ = _inputs(8, 2, 333, 0, torch.float32)
    est = estimate(q, k, q_offset=0, params=PARAMS, scale=32 ** -0.5)
    lists = build_block_lists(est, q_offset=0, Nk=333, params=PARAMS, force_density=target)
    causal, local, cand = block_windows_reference(0, *est.block_probs.shape[1:], PARAMS, DEVICE)
    n_causal, n_base = causal.sum(-1), (causal & ~cand).sum(-1)
    # per query block: target x causal blocks (rounded half up), but never fewer than window + sinks
    per_row = (target * n_causal + 0.5).floor().maximum(n_base).minimum(n_causal)
    assert not lists.dense and not lists.lazy.any()
    assert lists.density == pytest.approx(per_row.sum().item() / n_causal.sum().item())
    assert lists.density >= target - 0.02


@pytest.mark.parametrize("field,value", [("block_size", 48), ("gamma", 0.0), ("gamma", 1.5), ("theta_local", 0),
                                         ("window", -1), ("dense_fallback", 1.2), ("min_blocks", -1),
                                         ("query_parts", 3), ("query_parts", 128)])
def test_params_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        SparseParams(**{field: value})
