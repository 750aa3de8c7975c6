"""Per-KV-head visual token selection (mechanism 3) and the packed CSR layout."""
import pytest
import torch

from omnivideo.kernels.decode.kv_slimming import SlimParams, pack_kv, select_slim_tokens, visual_scores
from omnivideo.kernels.decode.reference import select_slim_tokens_reference


def observation(hq, t_obs, n, sharpness, seed=0, dtype=torch.float64):
    """Softmax attention [Hq, T_obs, N] of random queries; larger `sharpness` = more peaked rows.

    Returns (obs_attn, visual_mask): tokens 0..3 are sinks, the last 10 are question text.
    """
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(hq, t_obs, n, generator=gen, dtype=torch.float64)
    logits = logits * torch.as_tensor(sharpness, dtype=torch.float64).reshape(-1, 1, 1)
    visual = torch.ones(n, dtype=torch.bool)
    visual[:4] = False
    visual[-10:] = False
    return torch.softmax(logits, dim=-1).to(dtype), visual


def head_masses(obs_attn, visual, keep, hkv, pool):
    """Per head: (pooled visual mass kept, total pooled visual mass, smallest kept pooled score)."""
    scores = visual_scores(obs_attn, visual, hkv, pool).double()  # [Hkv, V]
    visual_pos = visual.nonzero()[:, 0]
    rows = []
    for u, idx in enumerate(keep):
        kept = torch.isin(visual_pos, idx)
        rows.append((scores[u, kept].sum().item(), scores[u].sum().item(), scores[u, kept].min().item()))
    return rows


@pytest.mark.parametrize("bad", [dict(gamma_decode=0.0), dict(gamma_decode=1.01), dict(min_tokens=-1),
                                 dict(pool=2), dict(pool=0)], ids=str)
def test_params_are_validated(bad):
    with pytest.raises(ValueError):
        SlimParams(**bad)


@pytest.mark.parametrize("hq,hkv,pool,gamma,min_tokens", [
    (4, 4, 1, 0.9, 0), (8, 2, 3, 0.95, 16), (14, 2, 5, 0.8, 4), (7, 1, 3, 0.99, 0)],
    ids=lambda v: str(v))
def test_matches_reference(hq, hkv, pool, gamma, min_tokens):
    sharp = torch.linspace(0.5, 4.0, hq)
    obs_attn, visual = observation(hq, 5, 300, sharp, seed=hq)
    params = SlimParams(gamma_decode=gamma, min_tokens=min_tokens, pool=pool)
    actual = select_slim_tokens(obs_attn, visual, params, num_kv_heads=hkv)
    expected = select_slim_tokens_reference(obs_attn, visual, params, num_kv_heads=hkv)
    assert [a.tolist() for a in actual] == [e.tolist() for e in expected]


@pytest.mark.parametrize("pool", [1, 3])
def test_covers_gamma_and_is_minimal(pool):
    hkv, gamma = 4, 0.9
    obs_attn, visual = observation(16, 8, 500, torch.linspace(0.3, 5.0, 16), seed=1, dtype=torch.float32)
    keep = select_slim_tokens(obs_attn, visual, SlimParams(gamma, min_tokens=0, pool=pool), num_kv_heads=hkv)
    for kept, total, lowest in head_masses(obs_attn, visual, keep, hkv, pool):
        assert kept >= gamma * total * (1 - 1e-6)
        assert kept - lowest < gamma * total  # without its lowest token the head falls below gamma


def test_budgets_differ_per_head():
    """A peaked KV head needs few visual tokens, a flat one most of them: that is the point."""
    sharp = torch.tensor([6.0, 6.0, 0.2, 0.2])  # KV head 0 peaked, KV head 1 flat (g = 2)
    obs_attn, visual = observation(4, 6, 400, sharp, seed=2)
    keep = select_slim_tokens(obs_attn, visual, SlimParams(0.9, min_tokens=0, pool=1), num_kv_heads=2)
    n_vis = int(visual.sum())
    peaked, flat = (len(k) - (400 - n_vis) for k in keep)
    assert peaked < 0.3 * n_vis < 0.7 * n_vis < flat


def test_non_visual_always_kept_and_indices_sorted():
    obs_attn, visual = observation(6, 4, 200, 8.0, seed=3)
    visual[50:60] = False  # text in the middle of the video (timestamps, separators)
    keep = select_slim_tokens(obs_attn, visual, SlimParams(0.5, min_tokens=0), num_kv_heads=3)
    others = set((~visual).nonzero()[:, 0].tolist())
    for idx in keep:
        assert idx.dtype == torch.long and torch.all(idx[1:] > idx[:-1])
        assert others <= set(idx.tolist()) and len(idx) < 200


def test_min_tokens_honoured_and_clipped():
    obs_attn, visual = observation(2, 2, 120, 50.0, seed=4)  # near one-hot: gamma alone keeps ~2 tokens
    n_vis, n_other = int(visual.sum()), int((~visual).sum())
    few = select_slim_tokens(obs_attn, visual, SlimParams(0.9, min_tokens=0, pool=1), num_kv_heads=2)
    floor = select_slim_tokens(obs_attn, visual, SlimParams(0.9, min_tokens=40, pool=1), num_kv_heads=2)
    clipped = select_slim_tokens(obs_attn, visual, SlimParams(0.9, min_tokens=10_000, pool=1), num_kv_heads=2)
    assert all(len(k) - n_other < 40 for k in few)
    assert all(len(k) - n_other == 40 for k in floor)
    assert all(set(a.tolist()) <= set(b.tolist()) for a, b in zip(few, floor))  # the floor adds the next best
    assert all(len(k) == n_vis + n_other for k in clipped)


def test_gamma_one_keeps_every_visual_token_even_with_zero_score():
    obs_attn, visual = observation(4, 2, 64, 1.0, seed=5)
    obs_attn[..., 10:20] = 0.0  # never attended
    keep = select_slim_tokens(obs_attn, visual, SlimParams(1.0, min_tokens=0), num_kv_heads=2)
    assert all(k.tolist() == list(range(64)) for k in keep)


def test_pooling_keeps_the_neighbours_of_a_hot_token():
    n = 40
    visual = torch.ones(n, dtype=torch.bool)
    obs_attn = torch.full((1, 1, n), 1e-4, dtype=torch.float64)
    obs_attn[0, 0, 20] = 1.0
    plain = select_slim_tokens(obs_attn, visual, SlimParams(0.8, min_tokens=0, pool=1))
    pooled = select_slim_tokens(obs_attn, visual, SlimParams(0.8, min_tokens=0, pool=3))
    assert plain[0].tolist() == [20]
    assert pooled[0].tolist() == [19, 20, 21]  # each carries a third of the pooled mass


def test_pack_kv_layout_and_repack_in_place():
    gen = torch.Generator().manual_seed(6)
    k, v = torch.randn(3, 50, 16, generator=gen), torch.randn(3, 50, 16, generator=gen)
    keep = [torch.tensor([0, 5, 49]), torch.arange(50), torch.tensor([7])]
    packed = pack_kv(k, v, keep, capacity=64)
    assert packed.lengths == (3, 50, 1) and packed.total == 54 and packed.capacity == 64
    assert packed.offsets.dtype == torch.int32 and packed.offsets.tolist() == [0, 3, 53, 54]
    for u, idx in enumerate(keep):
        rows = slice(packed.offsets[u], packed.offsets[u + 1])
        assert torch.equal(packed.k[rows], k[u, idx]) and torch.equal(packed.v[rows], v[u, idx])
    new_keep = [torch.arange(10), torch.tensor([1]), torch.arange(20, 40)]
    again = pack_kv(k, v, new_keep, out=packed)
    assert again.k.data_ptr() == packed.k.data_ptr() and again.offsets.data_ptr() == packed.offsets.data_ptr()
    assert again.lengths == (10, 1, 20) and again.offsets.tolist() == [0, 10, 11, 31]
    assert torch.equal(again.k[11:31], k[2, 20:40])
    dense = pack_kv(k, v, None)
    assert dense.lengths == (50, 50, 50) and torch.equal(dense.v, v.reshape(150, 16))
    with pytest.raises(ValueError):
        pack_kv(k, v, [torch.arange(50)] * 3, out=packed)  # 150 rows > capacity 64
