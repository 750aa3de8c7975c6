"""`bench ingest`'s baseline: transformers' own `generate(max_new_tokens=1)` from decoded frames, by stage.

Our CPU processor (transformers' needs torchvision) with the family's constants, the same synthetic prompt
as ours (`e2e.prefix_ids`: Qwen3-VL's timestamp text per frame group included), then `model.generate` with
whatever attention the caller set (sdpa for text and vision). Stages are timed by hooks on the vision tower
and the language model, synchronised at their edges only.

    row = run_hf(loaded, frames, stamps, question)   # {"ttft_s", "stages_s", "peak_allocated_bytes", ...}
"""
import time

import numpy as np
import torch

from omnivideo.app.video import frames_to_inputs
from omnivideo.bench.ingest.e2e import prefix_ids, tokens_per_group


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak(device):
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def run_hf(loaded, frames: np.ndarray, stamps: list[float], question: list[int]) -> dict:
    device, model, vis = loaded.device, loaded.model, loaded.vision_config
    marks: dict[str, float] = {}

    def mark(name):
        def hook(*_):
            if name not in marks:  # the language model runs once here (max_new_tokens=1)
                sync(device)
                marks[name] = time.perf_counter()
        return hook

    handles = [model.model.visual.register_forward_pre_hook(mark("vision0")),
               model.model.visual.register_forward_hook(mark("vision1")),
               model.model.language_model.register_forward_pre_hook(mark("lm0")),
               model.model.language_model.register_forward_hook(mark("lm1"))]
    reset(device)
    try:
        t0 = time.perf_counter()
        spec = loaded.family.processor
        inputs = frames_to_inputs(frames, stamps, patch_size=vis.patch_size, temporal_patch_size=vis.temporal_patch_size,
                                  merge_size=vis.spatial_merge_size, image_mean=spec.image_mean, image_std=spec.image_std)
        per_group = tokens_per_group(*frames.shape[1:3], vis)
        ids = torch.tensor([prefix_ids(_EngineView(loaded), inputs.num_visual_tokens, per_group) + question],
                           device=device)
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids),
                      pixel_values_videos=inputs.pixel_values_videos.to(device),
                      video_grid_thw=inputs.video_grid_thw.to(device),
                      mm_token_type_ids=(ids == model.config.video_token_id).long() * 2,
                      max_new_tokens=1, do_sample=False, pad_token_id=0)
        if not spec.timestamps:   # Qwen2.5-VL's temporal positions; Qwen3-VL's time is in the text
            kwargs["second_per_grid_ts"] = inputs.second_per_grid_ts.to(device)
        sync(device)
        t1 = time.perf_counter()
        with torch.inference_mode():
            model.generate(**kwargs)
        sync(device)
        t2 = time.perf_counter()
    finally:
        for h in handles:
            h.remove()
    vision, prefill = marks["vision1"] - marks["vision0"], marks["lm1"] - marks["lm0"]
    return {"ttft_s": t2 - t0, "stages_s": {"preprocess": t1 - t0, "vision": vision, "prefill": prefill,
                                            "first_token": t2 - t1 - vision - prefill},
            "peak_allocated_bytes": peak(device), "sparse": None}


class _EngineView:
    """What `prefix_ids` reads from an engine, for the baseline (which has none)."""

    def __init__(self, loaded):
        self.model, self.video_pad_id, self.family = loaded.model, loaded.model.config.video_token_id, loaded.family
