"""OmniSparse prefill inside the engine, on the tiny model and real video files.

Random weights give nearly flat attention, so at `balanced` the estimate keeps most blocks and the
per-layer dense fallback fires: identical tokens here prove the fallback, not the sparse kernel's
recall (that is measured on the structured workload, see docs/benchmarks/prefill/). The sparse
kernel path itself is exercised with gamma = 1 and the fallback off: every block kept, exact.
"""
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
    """Sparsity that saves nothing costs (almost) nothing: after each fallback the layer skips the estimate
    for a doubling number of chunks, so it estimates about log2(chunks) times, not once per chunk."""
    from omnivideo.engine.prefill import sparse_prefill

    calls = {}
    real = sparse_prefill._backend

    def counting(device, dtype):
        estimate, lists, attend = real(device, dtype)

        def counted(q, k, **kw):
            calls[k.shape[1]] = calls.get(k.shape[1], 0) + 1
            return estimate(q, k, **kw)
        return counted, lists, attend

    monkeypatch.setattr(sparse_prefill, "_backend", counting)
    tokens, conv = _run(tiny, clips[0], PRESETS["balanced"], chunk=64)
    stats = conv.stats["sparse"]
    layers = tiny.text_config.num_hidden_layers
    chunks = stats["calls"] // layers                       # chunk calls per layer (estimated or skipped)
    assert stats["dense_fallbacks"] == sum(calls.values())   # flat attention: every estimate fell back ...
    per_layer = sum(calls.values()) // layers
    assert per_layer == len([m for m in range(1, 64) if 2 ** m - 2 < chunks])   # ... at chunks 0, 2, 6, 14, ...
    assert stats["skipped_estimates"] == stats["calls"] - sum(calls.values()) > per_layer
    assert stats["mean_density"] == 1.0 and stats["lazy_share"] is None
    assert tokens == _run(tiny, clips[0], None)[0]
