"""OmniSparse prefill inside the engine, on the tiny model and real video files.

Random weights give nearly flat attention, so at `balanced` the estimate keeps most blocks and the
per-layer dense fallback fires: identical tokens here prove the fallback, not the sparse kernel's
recall (that is measured on the structured workload, see docs/benchmarks/prefill/). The sparse
kernel path itself is exercised with gamma = 1 and the fallback off: every block kept, exact.
"""
import math

import torch

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.engine.prefill.sparse_prefill import PRESETS
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs


def _run(tiny, clip, sparse, chunk=128):
    vis = tiny.vision_config
    inputs = to_model_inputs(sample_video(clip, SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    chat = ChatFormat(tiny.tokenizer)
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    engine = Engine(tiny, EngineConfig(chunk_size=chunk, sparse=sparse, sparse_min_keys=0))
    conv = engine.ingest(prefix, inputs)
    tokens = list(engine.generate(conv, chat.first_turn_ids("What happens?"), SamplingParams(max_new_tokens=12), []))
    return tokens, conv


def test_balanced_equals_dense_on_the_tiny_model_through_the_fallback(tiny, clips):
    for clip in clips[:2]:
        dense, _ = _run(tiny, clip, None)
        balanced, conv = _run(tiny, clip, PRESETS["balanced"])
        assert balanced == dense
        stats = conv.stats["sparse"]
        assert stats["calls"] > 0 and stats["dense_fallbacks"] > 0  # flat attention: the fallback is what ran


def test_full_budget_sparse_path_equals_dense_prefix_kv(tiny, clips):
    full = SparseParams(gamma=1.0, dense_fallback=1.0, window=64, min_blocks=1)
    dense_tokens, dense_conv = _run(tiny, clips[0], None)
    sparse_tokens, sparse_conv = _run(tiny, clips[0], full)
    assert sparse_conv.stats["sparse"]["dense_fallbacks"] == 0 and sparse_conv.stats["sparse"]["calls"] > 0
    assert sparse_tokens == dense_tokens
    for (k1, v1), (k2, v2) in zip(dense_conv.cache.iter_layers(dense_conv.prefix_len),
                                  sparse_conv.cache.iter_layers(sparse_conv.prefix_len)):
        assert torch.allclose(k1, k2, atol=1e-4) and torch.allclose(v1, v2, atol=1e-4)


def test_a_layer_that_keeps_falling_back_stops_estimating(tiny, clips, monkeypatch):
    """Sparsity that saves nothing costs (almost) nothing: after a fallback at Nk keys a layer runs dense
    without estimating until the prefix has doubled, so it estimates at most 1 + log2(N / min_keys) times
    and over fewer than 2N keys in all: a bounded share of what estimating every chunk would cost."""
    from omnivideo.engine.prefill import sparse_prefill

    calls = {}
    real = sparse_prefill._backend

    def counting(device, dtype):
        estimate, lists, attend = real(device, dtype)

        def counted(q, k, **kw):
            calls.setdefault(k.shape[1], 0)
            calls[k.shape[1]] += 1
            return estimate(q, k, **kw)
        return counted, lists, attend

    monkeypatch.setattr(sparse_prefill, "_backend", counting)
    min_keys = 64
    vis = tiny.vision_config
    inputs = to_model_inputs(sample_video(clips[0], SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    chat = ChatFormat(tiny.tokenizer)
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    engine = Engine(tiny, EngineConfig(chunk_size=64, sparse=PRESETS["balanced"], sparse_min_keys=min_keys))
    conv = engine.ingest(prefix, inputs)
    stats = conv.stats["sparse"]
    layers = tiny.text_config.num_hidden_layers
    n = len(prefix)
    chunk_keys = [min(n, c) for c in range(64, n + 64, 64)]                 # keys of each chunk call
    assert stats["dense_fallbacks"] == sum(calls.values()) > 0              # flat attention: every estimate fell back
    expected, resume = [], 0                                                # estimate, then wait for 2x the keys
    for nk in chunk_keys:
        if nk >= min_keys and nk >= resume:
            expected.append(nk)
            resume = 2 * nk
    assert calls == {nk: layers for nk in expected}
    assert len(expected) <= 1 + math.log2(n / min_keys) and sum(expected) < 2 * n
    all_keys = sum(nk for nk in chunk_keys if nk >= min_keys)              # estimating every chunk
    assert sum(expected) <= 4 / len(chunk_keys) * all_keys
    assert stats["skipped_estimates"] == stats["calls"] - sum(calls.values()) > 0
    assert stats["mean_density"] == stats["work_density"] == 1.0 and stats["lazy_share"] is None
    dense = list(engine.generate(conv, chat.first_turn_ids("What happens?"), SamplingParams(max_new_tokens=12), []))
    assert dense == _run(tiny, clips[0], None)[0]
