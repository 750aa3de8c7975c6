"""Our engine loop against transformers' own `generate`, on the tiny model and real video files."""
import pytest
import torch

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs

QUESTIONS = ["What happens in this video?", "Describe the scene at minute 3"]


def _inputs(tiny, path):
    vis = tiny.vision_config
    sampled = sample_video(path, SamplingConfig(fps=2.0))
    return to_model_inputs(sampled, patch_size=vis.patch_size, temporal_patch_size=vis.temporal_patch_size,
                           merge_size=vis.spatial_merge_size)


def _hf_generate(tiny, ids, inputs, n):
    ids_t = torch.tensor([ids])
    mm = (ids_t == tiny.model.config.video_token_id).int() * 2
    with torch.inference_mode():
        out = tiny.model.generate(input_ids=ids_t.to(tiny.device), attention_mask=torch.ones_like(ids_t).to(tiny.device),
                                  pixel_values_videos=inputs.pixel_values_videos.to(tiny.device),
                                  video_grid_thw=inputs.video_grid_thw.to(tiny.device),
                                  second_per_grid_ts=inputs.second_per_grid_ts.to(tiny.device),
                                  mm_token_type_ids=mm.to(tiny.device), max_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


@pytest.mark.parametrize("clip_index", [0, 1, 2])
def test_greedy_tokens_equal_hf_generate(tiny, clips, clip_index):
    inputs = _inputs(tiny, clips[clip_index])
    chat = ChatFormat(tiny.tokenizer)
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    # a chunk size smaller than the prefix exercises the chunked prefill against HF's one-pass forward
    engine = Engine(tiny, EngineConfig(chunk_size=64))
    assert len(prefix) > 64
    for question in QUESTIONS:
        turn = chat.first_turn_ids(question)
        conv = engine.ingest(prefix, inputs)
        ours = list(engine.generate(conv, turn, SamplingParams(max_new_tokens=16), stop_ids=[]))
        theirs = _hf_generate(tiny, prefix + turn, inputs, 16)
        assert ours == theirs, f"{clips[clip_index].name} / {question!r}"


def test_multi_turn_equals_rerunning_the_conversation(tiny, clips):
    inputs = _inputs(tiny, clips[0])
    chat = ChatFormat(tiny.tokenizer)
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    engine = Engine(tiny, EngineConfig(chunk_size=128))
    params = SamplingParams(max_new_tokens=6)
    conv = engine.ingest(prefix, inputs)
    first = list(engine.generate(conv, chat.first_turn_ids("What happens?"), params, chat.stop_ids))
    second_turn = chat.next_turn_ids("And then?")
    second = list(engine.generate(conv, second_turn, params, chat.stop_ids))
    # the whole conversation from scratch in one prefill: the same second answer
    answer1 = [t for t in first if t not in chat.stop_ids]
    history = chat.first_turn_ids("What happens?") + answer1 + second_turn
    fresh = engine.ingest(prefix, inputs)
    again = list(engine.generate(fresh, history, params, chat.stop_ids))
    assert second == again


def test_truncate_back_to_prefix_reuses_the_ingest(tiny, clips):
    inputs = _inputs(tiny, clips[1])
    chat = ChatFormat(tiny.tokenizer)
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    engine = Engine(tiny, EngineConfig())
    conv = engine.ingest(prefix, inputs)
    a = list(engine.generate(conv, chat.first_turn_ids("Who is there?"), SamplingParams(max_new_tokens=8), []))
    engine.truncate(conv, len(prefix))
    b = list(engine.generate(conv, chat.first_turn_ids("Who is there?"), SamplingParams(max_new_tokens=8), []))
    assert a == b and conv.cache.get_seq_length() == len(prefix) + len(chat.first_turn_ids("Who is there?")) + 7


def test_sampled_decoding_is_reproducible_with_a_seed(tiny, clips):
    inputs = _inputs(tiny, clips[2])
    chat = ChatFormat(tiny.tokenizer)
    engine = Engine(tiny, EngineConfig())
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    runs = []
    for seed in (7, 7, 8):
        conv = engine.ingest(prefix, inputs)
        params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=24, seed=seed)
        runs.append(list(engine.generate(conv, chat.first_turn_ids("Go"), params, [])))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
