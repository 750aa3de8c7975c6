"""Layer-major prefill rounds (omnivideo/engine/prefill/prefix_prefill.py): the same cache and answers as chunk by chunk,
NF4 layers dequantized once per round and given back their own forward afterwards."""
import pytest
import torch

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prefill.prefix_prefill import dense_weights, plan_rounds
from omnivideo.engine.sampling import SamplingParams
from omnivideo.bench.random_model import random_model
from omnivideo.bench.prefill.e2e_timing import prefix_ids, synthetic_video
from omnivideo.errors import ConfigError

bnb = pytest.importorskip("bitsandbytes")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_fp32():
    return random_model("tiny", CPU, quant="none")


@pytest.fixture(scope="module")
def tiny_nf4():
    return random_model("tiny", CPU, quant="nf4")


def test_plan_rounds_covers_every_token_once_in_whole_chunks():
    assert plan_rounds(10, 4, 8) == [[(0, 4), (4, 8)], [(8, 10)]]
    assert plan_rounds(10, 4, 3) == [[(0, 4)], [(4, 8)], [(8, 10)]]      # below one chunk: chunk by chunk
    assert plan_rounds(8, 4, 100) == [[(0, 4), (4, 8)]]
    assert plan_rounds(0, 4, 8) == []
    for n, chunk, rounds in [(1000, 64, 256), (4097, 4096, 65536), (130, 64, 64)]:
        flat = [c for r in plan_rounds(n, chunk, rounds) for c in r]
        assert flat[0][0] == 0 and flat[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(flat, flat[1:]))
        assert all(b - a <= chunk for a, b in flat)
        assert all(sum(b - a for a, b in r) <= max(rounds, chunk) for r in plan_rounds(n, chunk, rounds))


def test_round_size_is_validated():
    with pytest.raises(ConfigError, match="prefill_round_tokens"):
        EngineConfig(prefill_round_tokens=0)


def _ingest(loaded, round_tokens: int, visual: int = 208):
    engine = Engine(loaded, EngineConfig(chunk_size=64, vision_chunk_groups=2, prefill_round_tokens=round_tokens))
    video = synthetic_video(loaded, visual, side=8)
    calls = []
    conv = engine.ingest(prefix_ids(engine, visual), video, progress=lambda d, t, s: calls.append((d, t, s)))
    return engine, conv, [c for c in calls if c[2] == "prefill"]


def _answer(engine, conv):
    return list(engine.generate(conv, [11, 12, 13], SamplingParams(max_new_tokens=8), []))


@pytest.mark.parametrize("model", ["tiny_fp32", "tiny_nf4"])
def test_layer_major_rounds_fill_the_same_cache_as_chunk_by_chunk(model, request):
    loaded = request.getfixturevalue(model)
    e1, by_chunk, _ = _ingest(loaded, round_tokens=64)           # one chunk per round: the old order
    e2, by_round, progress = _ingest(loaded, round_tokens=128)   # two chunks per round
    e3, one_round, _ = _ingest(loaded, round_tokens=1 << 20)     # every chunk in one round
    n = by_chunk.prefix_len
    assert n == one_round.prefix_len > 3 * 64                     # several chunks and rounds really ran
    for conv in (by_round, one_round):
        for i, ((ka, va), (kb, vb)) in enumerate(zip(conv.cache.iter_layers(n), by_chunk.cache.iter_layers(n))):
            # CPU: the same ops on the same rows in another order give the same bits (the NF4 layers
            # multiply by the same dequantized weight bitsandbytes builds itself)
            assert torch.equal(ka, kb) and torch.equal(va, vb), (model, i)
    assert _answer(e3, one_round) == _answer(e1, by_chunk)
    done = [d for d, _, _ in progress]
    assert done == sorted(done) and done[-1] == n and progress[-1][1] == n


def test_dense_weights_equals_bitsandbytes_and_restores_the_layer(tiny_nf4):
    layer = tiny_nf4.model.model.language_model.layers[0]
    linears = [m for m in layer.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linears) == 7                      # q, k, v, o, gate, up, down
    x = torch.randn(1, 96, tiny_nf4.text_config.hidden_size)
    marker = linears[0].forward = linears[0].forward   # an instance forward set before (e.g. NF4 GEMV routing)
    before = [m.__dict__.get("forward") for m in linears]
    with torch.inference_mode():
        expected = [m(x if m.in_features == x.shape[-1] else torch.randn(1, 96, m.in_features)) for m in linears[:1]]
        with dense_weights(layer) as count:
            assert count == 7
            assert all("forward" in m.__dict__ for m in linears)
            got = linears[0](x)
            mlp_in = torch.randn(1, 96, linears[-1].in_features)
            dense_down = linears[-1](mlp_in)
        assert torch.equal(got, expected[0])
        assert torch.equal(dense_down, linears[-1](mlp_in))
    assert linears[0].__dict__["forward"] == marker            # put back
    assert [m.__dict__.get("forward") for m in linears] == before   # routed or not, as they were
    assert not any(hasattr(m, "_omnivideo_dense_weight") for m in linears)


def test_dense_weights_is_a_no_op_without_nf4(tiny_fp32):
    layer = tiny_fp32.model.model.language_model.layers[0]
    with dense_weights(layer) as count:
        assert count == 0
