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
