"""The pipelined ingest (parallel decoding -> chunked vision -> chunked prefill) against decoding first.

Same frames, same prefix KV to the bit, same greedy answer, on real clips; cancellation between chunks,
progress per stage and the decoders' bounded look-ahead.
"""
import time

import numpy as np
import pytest
import torch

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.timeline import StageTimeline
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.errors import VideoCancelled
from omnivideo.app.video import CancelToken, SamplingConfig, frames_to_inputs, sample_video, to_model_inputs
from omnivideo.app.video.stream import StreamConfig, array_stream, open_video_stream

SAMPLING = SamplingConfig(fps=2.0)
# Bit identity is a CPU property of the tiny fp32 model: on a GPU, cuBLAS picks kernels by shape, so a
# different chunking may round differently (the GPU run checks the pipeline's plumbing, not the bits).
cpu_bits = pytest.mark.skipif(torch.cuda.is_available(), reason="bit identity is checked on the CPU")


def _unpipelined(tiny, engine, path):
    vis = tiny.vision_config
    sampled = sample_video(path, SAMPLING, workers=1)
    inputs = to_model_inputs(sampled, patch_size=vis.patch_size, temporal_patch_size=vis.temporal_patch_size,
                             merge_size=vis.spatial_merge_size)
    prefix = ChatFormat(tiny.tokenizer).prefix_ids(inputs.num_visual_tokens)
    return sampled.timestamps_s, engine.ingest(prefix, inputs)


def _answer(engine, chat, conv):
    return list(engine.generate(conv, chat.first_turn_ids("What happens?"), SamplingParams(max_new_tokens=12), []))


def _assert_same_kv(a, b):
    assert a.prefix_len == b.prefix_len and a.rope_delta == b.rope_delta and a.ids == b.ids
    for (ka, va), (kb, vb) in zip(a.cache.iter_layers(a.prefix_len), b.cache.iter_layers(b.prefix_len)):
        assert torch.equal(ka, kb) and torch.equal(va, vb)


@cpu_bits
@pytest.mark.parametrize("clip_index", [0, 1, 2])
def test_pipelined_ingest_is_bit_identical_to_decoding_first(tiny, clips, clip_index):
    chat = ChatFormat(tiny.tokenizer)
    # small chunks everywhere so that every clip spans several decode segments, vision and prefill chunks
    engine = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=2))
    stamps, reference = _unpipelined(tiny, engine, clips[clip_index])
    timeline = StageTimeline(engine.device)
    with open_video_stream(clips[clip_index], SAMPLING, vision=tiny.vision_config, device=engine.device,
                           config=StreamConfig(segment_groups=1, workers=2, max_ahead=1), timeline=timeline) as s:
        conv = engine.ingest_stream(chat.prefix_ids(s.num_visual_tokens), s, timeline=timeline)
    assert s.timestamps_s == stamps
    _assert_same_kv(conv, reference)
    assert _answer(engine, chat, conv) == _answer(engine, chat, reference)
    stages = {span["stage"] for span in timeline.finish()}
    assert {"decode", "preprocess", "vision", "prefill"} <= stages


@cpu_bits
def test_vision_chunks_equal_one_pass_over_the_video(tiny, clips):
    """The tower never mixes frame groups: any chunking gives the one-pass embeddings, hence the same KV."""
    one_pass = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=1000))
    chunked = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=1))
    _, a = _unpipelined(tiny, one_pass, clips[1])
    _, b = _unpipelined(tiny, chunked, clips[1])
    _assert_same_kv(a, b)


@cpu_bits
def test_odd_frame_count_pads_the_last_group_as_the_processor_does(tiny):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 56, 84, 3), dtype=np.uint8)  # 7 frames: 4 groups, the last padded
    stamps = [0.5 * i for i in range(7)]
    vis = tiny.vision_config
    inputs = frames_to_inputs(frames, stamps, patch_size=vis.patch_size, temporal_patch_size=vis.temporal_patch_size,
                              merge_size=vis.spatial_merge_size)
    chat = ChatFormat(tiny.tokenizer)
    engine = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=3))
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    reference = engine.ingest(prefix, inputs)
    with array_stream(frames, stamps, vision=vis, device=engine.device,
                      config=StreamConfig(segment_groups=2, workers=3)) as s:
        assert s.grid_thw == tuple(inputs.video_grid_thw[0].tolist())
        assert s.second_per_grid_t() == float(inputs.second_per_grid_ts[0])
        conv = engine.ingest_stream(prefix, s)
    _assert_same_kv(conv, reference)


def test_progress_reports_each_stage_to_its_total(tiny, clips):
    engine = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=1))
    seen = {}
    with open_video_stream(clips[0], SAMPLING, vision=tiny.vision_config, device=engine.device,
                           config=StreamConfig(segment_groups=1, workers=2),
                           progress=lambda d, t, s: seen.setdefault(s, []).append((d, t))) as s:
        prefix = ChatFormat(tiny.tokenizer).prefix_ids(s.num_visual_tokens)
        engine.ingest_stream(prefix, s, progress=lambda d, t, st: seen.setdefault(st, []).append((d, t)))
    assert {"probe", "decode", "vision", "prefill"} <= seen.keys()
    for stage in ("decode", "vision", "prefill"):
        done = [d for d, _ in seen[stage]]
        assert done == sorted(done) and done[-1] == seen[stage][-1][1], (stage, seen[stage])
    assert seen["vision"][-1][1] == s.grid_thw[0] and seen["prefill"][-1][1] == len(prefix)


def test_cancel_between_chunks_stops_the_readers(tiny, clips):
    engine = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=1))
    token = CancelToken()

    def progress(done, total, stage):
        if stage == "prefill":
            token.cancel()

    with pytest.raises(VideoCancelled):
        with open_video_stream(clips[1], SAMPLING, vision=tiny.vision_config, device=engine.device,
                               config=StreamConfig(segment_groups=1, workers=2), cancel=token) as s:
            engine.ingest_stream(ChatFormat(tiny.tokenizer).prefix_ids(s.num_visual_tokens), s, progress=progress,
                                 cancel=token)
    assert not any(t.is_alive() for t in s._threads)


def test_readers_stay_within_the_look_ahead_bound(tiny):
    frames = np.zeros((24, 56, 56, 3), np.uint8)
    with array_stream(frames, [float(i) for i in range(24)], vision=tiny.vision_config, device=torch.device("cpu"),
                      config=StreamConfig(segment_groups=1, workers=3, max_ahead=2)) as s:
        for _ in s:
            assert len(s._done) <= s.max_ahead
        assert s.timestamps_s == [float(i) for i in range(24)]


def test_groups_ready_counts_what_iterating_yields_without_waiting(tiny):
    frames = np.zeros((20, 56, 56, 3), np.uint8)       # 10 groups of 2 frames; segments of 4 groups
    with array_stream(frames, [float(i) for i in range(20)], vision=tiny.vision_config, device=torch.device("cpu"),
                      config=StreamConfig(segment_groups=4, workers=1, max_ahead=8)) as s:
        deadline = time.monotonic() + 30
        while s.groups_ready() < 10 and time.monotonic() < deadline:   # the reader decodes ahead
            time.sleep(0.01)
        assert s.groups_ready() == 10
        it = iter(s)
        assert next(it).shape[0] == 4 * 16 and s.groups_ready() == 6   # 16 patches per group (56 px)
        next(it)
        next(it)
        assert s.groups_ready() == 0


def test_rounds_cover_only_decoded_frames(tiny):
    """Ready inputs: one round for the whole prefix. A source that has decoded nothing ahead: one chunk per round,
    so the prefill of early chunks overlaps decoding (the timeline has one prefill span per round)."""
    frames = np.zeros((64, 56, 56, 3), np.uint8)        # 32 groups x 16 patches / 4 = 128 visual tokens
    chat = ChatFormat(tiny.tokenizer)
    engine = Engine(tiny, EngineConfig(chunk_size=64, vision_chunk_groups=1, prefill_round_tokens=1 << 20))

    class Starved:   # wraps a stream and reports nothing ready ahead: a decode-bound source
        def __init__(self, stream):
            self.stream, self.grid_thw = stream, stream.grid_thw

        def second_per_grid_t(self):
            return self.stream.second_per_grid_t()

        def groups_ready(self):
            return 0

        def __iter__(self):
            return iter(self.stream)

    rounds = {}
    for name, wrap in (("ready", lambda s: s), ("starved", Starved)):
        timeline = StageTimeline(engine.device)
        with array_stream(frames, [float(i) for i in range(64)], vision=tiny.vision_config, device=engine.device,
                          config=StreamConfig(segment_groups=1, workers=1, max_ahead=64)) as s:
            deadline = time.monotonic() + 30
            while s.groups_ready() < 32 and time.monotonic() < deadline:
                time.sleep(0.01)
            prefix = chat.prefix_ids(s.num_visual_tokens)
            conv = engine.ingest_stream(prefix, wrap(s), timeline=timeline)
        rounds[name] = [span for span in timeline.finish() if span["stage"] == "prefill"]
        rounds[name + "_kv"] = conv.cache.layer_kv(1)[0].clone()
    chunks = -(-len(prefix) // 64)
    assert chunks >= 2 and len(rounds["ready"]) == 1 and len(rounds["starved"]) == chunks
    assert torch.allclose(rounds["ready_kv"], rounds["starved_kv"], atol=1e-6)
