"""End-to-end cold ingest from a video file for `bench ingest`: pipelined vs decoding first, with a timeline.

Pipelined: `open_video_stream` readers decode time segments while the engine encodes and prefills
earlier ones (the app's path). Sequential: `sample_video`, then the processor, then the same engine
chunks. Both end with the first answer token; every unit of work is a span on one clock.

    row = run_e2e(engine, Path(".carry/ingest_1080p.mp4"), SamplingConfig(fps=2), question, pipelined=True)
    row["timeline"]   # [{"stage": "decode", "lane": "reader 0", "start_s": ..., "end_s": ...}, ...]
"""
import time
from pathlib import Path

import torch

from omnivideo.engine.prefill.ingest_pipeline import InputsSource
from omnivideo.timeline import StageTimeline
from omnivideo.engine.sampling import SamplingParams
from omnivideo.app.video import SamplingConfig, sample_video
from omnivideo.app.video.processor import family_inputs
from omnivideo.app.video.stream import StreamConfig, open_video_stream

STAGES = ("decode", "preprocess", "vision", "prefill", "first_token")


STAMP_TOKENS = 6   # what `<12.5 seconds>` costs in Qwen's tokenizer ("<", "1", "2", ".", "5", " seconds>" ~ 6)


def prefix_ids(engine, visual_tokens: int, tokens_per_group: int | None = None, text_id: int = 100,
               edge: int = 8) -> list[int]:
    """Synthetic template prefix: text, <vision_start>, video pads, <vision_end>, text. A family with
    timestamp text (Qwen3-VL) gets its layout instead: per frame group STAMP_TOKENS text ids, then
    <vision_start> + the group's pads + <vision_end> (what Qwen3VLProcessor writes; ids only: the random
    models have no tokenizer, and the cost depends on the count, not the text). `engine`: anything with
    .model, .video_pad_id and .family (an Engine, or the bench's view of a loaded model)."""
    cfg = engine.model.config
    start, end = [cfg.vision_start_token_id], [cfg.vision_end_token_id]
    if not engine.family.processor.timestamps:
        return [text_id] * edge + start + [engine.video_pad_id] * visual_tokens + end + [text_id] * edge
    assert tokens_per_group and visual_tokens % tokens_per_group == 0, (visual_tokens, tokens_per_group)
    group = [text_id + 1] * STAMP_TOKENS + start + [engine.video_pad_id] * tokens_per_group + end
    return [text_id] * edge + group * (visual_tokens // tokens_per_group) + [text_id] * edge


def tokens_per_group(height: int, width: int, vision) -> int:
    """Visual tokens of one frame group of `height` x `width` px (vision: the model's vision config)."""
    factor = vision.patch_size * vision.spatial_merge_size
    return (height // factor) * (width // factor)


def first_token(engine, conv, question: list[int], timeline: StageTimeline) -> None:
    """Question prefill + the first greedy token, as one "first_token" span."""
    with timeline.device_span("first_token", 0):
        stream = engine.generate(conv, question, SamplingParams(max_new_tokens=1), [])
        next(stream)
        stream.close()


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def overlap_s(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> float:
    """Seconds covered by both unions of intervals."""
    total, ux, uy = 0.0, union(xs), union(ys)
    for a, b in ux:
        for c, d in uy:
            total += max(0.0, min(b, d) - max(a, c))
    return total


def summarize(spans: list[dict], ttft_s: float) -> dict:
    """Busy seconds per stage (summed over lanes), share of the wall time, and decode/device overlap."""
    busy = {s: round(sum(x["end_s"] - x["start_s"] for x in spans if x["stage"] == s), 4) for s in STAGES}
    decode = [(x["start_s"], x["end_s"]) for x in spans if x["stage"] in ("decode", "preprocess")]
    device = [(x["start_s"], x["end_s"]) for x in spans if x["lane"] == "device"]
    wall_decode = sum(b - a for a, b in union(decode))
    return {"busy_s": busy, "share_of_ttft": {s: round(v / ttft_s, 4) for s, v in busy.items()},
            "decode_wall_s": round(wall_decode, 4), "device_wall_s": round(sum(b - a for a, b in union(device)), 4),
            "decode_overlapped_with_device_s": round(overlap_s(decode, device), 4),
            "decode_end_s": round(max((b for _, b in decode), default=0.0), 4)}


def run_e2e(engine, path: Path, sampling: SamplingConfig, question: list[int], pipelined: bool,
            workers: int | None = None) -> dict:
    device, vis = engine.device, engine.loaded.vision_config
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    timeline = StageTimeline(device)
    t0 = time.perf_counter()
    spec = engine.family.processor     # the family's normalisation (and, in `sampling`, its resize factor)
    if pipelined:
        cfg = StreamConfig(workers=workers)   # the app's segments (StreamConfig's default)
        with open_video_stream(path, sampling, vision=vis, device=device, config=cfg, timeline=timeline,
                               normalization=(spec.image_mean, spec.image_std)) as s:
            per_group = tokens_per_group(s.plan.resized_height, s.plan.resized_width, vis)
            conv = engine.ingest_stream(prefix_ids(engine, s.num_visual_tokens, per_group), s, timeline=timeline)
        frames, tokens, size = s.count, s.num_visual_tokens, (s.plan.resized_height, s.plan.resized_width)
    else:
        with timeline.span("decode", 0, "reader"):
            sampled = sample_video(path, sampling, workers=workers)
        with timeline.span("preprocess", 0, "reader"):
            inputs = family_inputs(sampled, spec)
        per_group = tokens_per_group(*sampled.frames.shape[1:3], vis)
        conv = engine.ingest_stream(prefix_ids(engine, inputs.num_visual_tokens, per_group), InputsSource(inputs),
                                    timeline=timeline)
        frames, tokens, size = len(sampled.timestamps_s), inputs.num_visual_tokens, sampled.frames.shape[1:3]
    first_token(engine, conv, question, timeline)
    spans = timeline.finish()
    ttft = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    del conv
    return {"mode": "pipelined" if pipelined else "sequential", "ttft_s": round(ttft, 4), "frames": frames,
            "visual_tokens": tokens, "frame_size": list(size), "peak_allocated_bytes": peak,
            **summarize(spans, ttft), "timeline": [{**x, "start_s": round(x["start_s"], 5),
                                                    "end_s": round(x["end_s"], 5)} for x in spans]}
