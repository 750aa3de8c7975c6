"""Qwen3-VL through our own loop: greedy tokens equal transformers' `generate` on tiny-qwen3-vl (dense and
through the sparse kernel path at gamma 1), and the chunked prefill with DeepStack equals the one-shot forward."""
import pytest
import torch

from omnivideo.app.video import SamplingConfig, sample_video
from omnivideo.app.video.processor import family_inputs
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.family import VideoLayout
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams
from tests.conftest import assert_close

QUESTIONS = ["What happens in this video?", "Describe the scene at minute 3"]
FULL_SPARSE = SparseParams(gamma=1.0, dense_fallback=1.0, window=64, min_blocks=1)   # every block kept


def _video(loaded, path):
    """(VideoInputs, VideoLayout) of `path` under the Qwen3-VL sampling rules (patch 16)."""
    spec = loaded.family.processor
    sampled = sample_video(path, SamplingConfig.of(fps=2.0, factor=spec.factor))
    inputs = family_inputs(sampled, spec)
    layout = VideoLayout.from_frames(inputs.video_grid_thw[0].tolist(), spec.merge_size, sampled.plan.timestamps_s,
                                     spec.temporal_patch_size)
    return inputs, layout


def _hf_kwargs(loaded, ids, inputs):
    ids_t = torch.tensor([ids], device=loaded.device)
    return dict(input_ids=ids_t, attention_mask=torch.ones_like(ids_t),
                pixel_values_videos=inputs.pixel_values_videos.to(loaded.device),
                video_grid_thw=inputs.video_grid_thw.to(loaded.device),
                mm_token_type_ids=(ids_t == loaded.model.config.video_token_id).int() * 2)


def _hf_generate(loaded, ids, inputs, n):
    with torch.inference_mode():
        out = loaded.model.generate(**_hf_kwargs(loaded, ids, inputs), max_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


def test_prompt_has_one_timestamp_per_frame_group(tiny_qwen3_vl, clips):
    inputs, layout = _video(tiny_qwen3_vl, clips[0])
    chat = ChatFormat(tiny_qwen3_vl.tokenizer, family=tiny_qwen3_vl.family)
    prefix = chat.video_prefix_ids(layout)
    text = tiny_qwen3_vl.tokenizer.decode(prefix)
    groups = inputs.video_grid_thw[0, 0].item()
    assert text.count("<|vision_start|>") == groups == len(layout.group_times_s) >= 2
    assert text.count(" seconds>") == groups and f"<{layout.group_times_s[1]:.1f} seconds><|vision_start|>" in text
    assert prefix.count(tiny_qwen3_vl.model.config.video_token_id) == inputs.num_visual_tokens


@pytest.mark.parametrize("sparse", [None, FULL_SPARSE], ids=["dense", "sparse-gamma1"])
@pytest.mark.parametrize("clip_index", [0, 1, 2])
def test_greedy_tokens_equal_hf_generate(tiny_qwen3_vl, clips, clip_index, sparse):
    loaded = tiny_qwen3_vl
    inputs, layout = _video(loaded, clips[clip_index])
    chat = ChatFormat(loaded.tokenizer, family=loaded.family)
    prefix = chat.video_prefix_ids(layout)
    # chunks smaller than the prefix: DeepStack rows are carried chunk by chunk
    engine = Engine(loaded, EngineConfig(chunk_size=64, sparse=sparse, sparse_min_keys=0))
    assert len(prefix) > 3 * 64
    for question in QUESTIONS:
        turn = chat.first_turn_ids(question)
        conv = engine.ingest(prefix, inputs)
        if sparse is not None:   # the sparse kernel path ran (no layer fell back to dense)
            assert conv.stats["sparse"]["calls"] > 0 and conv.stats["sparse"]["dense_fallbacks"] == 0
        ours = list(engine.generate(conv, turn, SamplingParams(max_new_tokens=16), stop_ids=[]))
        theirs = _hf_generate(loaded, prefix + turn, inputs, 16)
        assert ours == theirs, f"{clips[clip_index].name} / {question!r}"


def _hf_cache_layers(cache):
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [(layer.keys[0], layer.values[0]) for layer in layers]
    return [(k[0], v[0]) for k, v in zip(cache.key_cache, cache.value_cache)]


def test_chunked_prefill_with_deepstack_equals_the_one_shot_forward(tiny_qwen3_vl, clips):
    loaded = tiny_qwen3_vl
    inputs, layout = _video(loaded, clips[1])
    prefix = ChatFormat(loaded.tokenizer, family=loaded.family).video_prefix_ids(layout)
    conv = Engine(loaded, EngineConfig(chunk_size=64, prefill_round_tokens=128)).ingest(prefix, inputs)
    with torch.inference_mode():
        out = loaded.model(**_hf_kwargs(loaded, prefix, inputs), use_cache=True)
    cache = getattr(out, "past_key_values", None) or out.cache
    theirs = _hf_cache_layers(cache)
    ours = list(conv.cache.iter_layers(conv.prefix_len))
    assert len(ours) == len(theirs) == loaded.text_config.num_hidden_layers
    for i, ((k1, v1), (k2, v2)) in enumerate(zip(ours, theirs)):
        assert_close(f"layer {i} K", k1, k2, rel_rms=1e-5)
        assert_close(f"layer {i} V", v1, v2, rel_rms=1e-5)
    # the same forward without DeepStack differs after the first DeepStack layer: the test sees the features
    with torch.inference_mode():
        embeds = loaded.model.model.get_input_embeddings()(torch.tensor([prefix]))
        video = torch.tensor([prefix]) == loaded.model.config.video_token_id
        rows = Engine(loaded).encode_video(inputs.pixel_values_videos, inputs.video_grid_thw)
        embeds[video] = rows[:, :embeds.shape[-1]]
        positions, _ = loaded.family.rope_index(loaded.model, torch.tensor([prefix]), video,
                                                tuple(inputs.video_grid_thw[0].tolist()), None)
        plain = loaded.model.model.language_model(inputs_embeds=embeds, position_ids=positions, use_cache=True)
    plain_cache = _hf_cache_layers(getattr(plain, "past_key_values", None) or plain.cache)
    assert torch.equal(plain_cache[0][0], theirs[0][0])      # layer 0 runs before any DeepStack feature
    assert not torch.allclose(plain_cache[1][0], theirs[1][0], atol=1e-3)
