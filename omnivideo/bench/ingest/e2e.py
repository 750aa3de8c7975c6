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
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs
from omnivideo.app.video.stream import StreamConfig, open_video_stream

STAGES = ("decode", "preprocess", "vision", "prefill", "first_token")


def prefix_ids(engine, visual_tokens: int, text_id: int = 100, edge: int = 8) -> list[int]:
    """Synthetic template prefix: text, <vision_start>, video pads, <vision_end>, text."""
    cfg = engine.model.config
    return ([text_id] * edge + [cfg.vision_start_token_id] + [engine.video_pad_id] * visual_tokens
            + [cfg.vision_end_token_id] + [text_id] * edge)


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
    if pipelined:
        cfg = StreamConfig(workers=workers)   # the app's segments (StreamConfig's default)
        with open_video_stream(path, sampling, vision=vis, device=device, config=cfg, timeline=timeline) as s:
            conv = engine.ingest_stream(prefix_ids(engine, s.num_visual_tokens), s, timeline=timeline)
        frames, tokens, size = s.count, s.num_visual_tokens, (s.plan.resized_height, s.plan.resized_width)
    else:
        with timeline.span("decode", 0, "reader"):
            sampled = sample_video(path, sampling, workers=workers)
        with timeline.span("preprocess", 0, "reader"):
            inputs = to_model_inputs(sampled, patch_size=vis.patch_size, temporal_patch_size=vis.temporal_patch_size,
                                     merge_size=vis.spatial_merge_size)
        conv = engine.ingest_stream(prefix_ids(engine, inputs.num_visual_tokens), InputsSource(inputs),
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
