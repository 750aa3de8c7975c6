"""Sampled frames -> Qwen2.5-VL / Qwen3-VL video inputs, without torchvision.

transformers' `Qwen2VLVideoProcessor` / `Qwen3VLVideoProcessor` need torchvision, which has no CPU build
here; this is the same computation in plain torch: fused rescale (1/255) + normalisation (OpenAI-CLIP for
Qwen2.5-VL, 0.5 / 0.5 for Qwen3-VL: the family's `ProcessorSpec`), then the patch layout
[grid_t, grid_h/2, grid_w/2, 2, 2] x [3, temporal_patch, p, p] (p = 14 or 16; both processors use it).
GPU-marked tests (`tests/video/test_video_processor.py`, `tests/video/test_qwen3_vl_processor.py`) check it
equal to the real processors where torchvision exists.

    inputs = to_model_inputs(sample_video(path))
    model(..., pixel_values_videos=inputs.pixel_values_videos, video_grid_thw=inputs.video_grid_thw,
          second_per_grid_ts=inputs.second_per_grid_ts, mm_token_type_ids=mm_token_type_ids(ids, vid))
"""
from dataclasses import dataclass

import numpy as np
import torch

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESCALE_FACTOR = 1 / 255


@dataclass(frozen=True, slots=True, eq=False)
class VideoInputs:
    """Model inputs for one video.

    pixel_values_videos: float32 [grid_t * grid_h * grid_w, 3 * temporal_patch * patch * patch]
    video_grid_thw: int64 [1, 3] = (grid_t, grid_h, grid_w) in patches, before the spatial merge
    second_per_grid_ts: float32 [1], seconds spanned by one temporal grid step (real timestamps)
    num_visual_tokens: video pad tokens the prompt needs: t * h * w // merge**2
    timestamps_s: PTS of the sampled frames, for the prompt's time references
    """
    pixel_values_videos: torch.Tensor
    video_grid_thw: torch.Tensor
    second_per_grid_ts: torch.Tensor
    num_visual_tokens: int
    timestamps_s: list[float]


def normalize(frames: torch.Tensor, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> float32, as transformers' fused rescale + normalize (mean, std x 255)."""
    mean = torch.tensor(image_mean, dtype=torch.float32) * (1.0 / RESCALE_FACTOR)
    std = torch.tensor(image_std, dtype=torch.float32) * (1.0 / RESCALE_FACTOR)
    return (frames.to(torch.float32) - mean[:, None, None]) / std[:, None, None]


def patchify(video: torch.Tensor, patch_size: int, temporal_patch_size: int, merge_size: int):
    """float [T, C, H, W] -> ([grid_t * grid_h * grid_w, C * tps * p * p], (grid_t, grid_h, grid_w)).

    A frame count that is not a multiple of `temporal_patch_size` is padded with the last frame.
    """
    if pad := -video.shape[0] % temporal_patch_size:
        video = torch.cat((video, video[-1:].expand(pad, -1, -1, -1)), dim=0)
    frames, channels, height, width = video.shape
    assert height % (patch_size * merge_size) == 0 and width % (patch_size * merge_size) == 0, (height, width)
    grid_t, grid_h, grid_w = frames // temporal_patch_size, height // patch_size, width // patch_size
    patches = video.view(grid_t, temporal_patch_size, channels, grid_h // merge_size, merge_size, patch_size,
                         grid_w // merge_size, merge_size, patch_size)
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)
    return flat, (grid_t, grid_h, grid_w)


def seconds_per_grid_step(timestamps_s: list[float], temporal_patch_size: int) -> float:
    """Mean frame spacing of the real timestamps times the frames per temporal grid step."""
    if len(timestamps_s) < 2:
        return float(temporal_patch_size)  # one frame: no spacing; the model only needs a positive step
    return grid_step_from_ends(timestamps_s[0], timestamps_s[-1], len(timestamps_s), temporal_patch_size)


def grid_step_from_ends(first_s: float, last_s: float, count: int, temporal_patch_size: int) -> float:
    """`seconds_per_grid_step` from the first and last timestamps alone (what a pipelined ingest knows early)."""
    if count < 2:
        return float(temporal_patch_size)
    spacing = (last_s - first_s) / (count - 1)
    return temporal_patch_size * spacing if spacing > 0 else float(temporal_patch_size)


def frames_to_inputs(frames: np.ndarray, timestamps_s: list[float], *, patch_size: int = 14,
                     temporal_patch_size: int = 2, merge_size: int = 2, image_mean=OPENAI_CLIP_MEAN,
                     image_std=OPENAI_CLIP_STD) -> VideoInputs:
    """uint8 [T, H, W, 3] RGB frames (H, W multiples of patch * merge) -> VideoInputs."""
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8, (frames.shape, frames.dtype)
    video = normalize(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2), image_mean, image_std)
    flat, (t, h, w) = patchify(video, patch_size, temporal_patch_size, merge_size)
    return VideoInputs(
        pixel_values_videos=flat,
        video_grid_thw=torch.tensor([[t, h, w]], dtype=torch.int64),
        second_per_grid_ts=torch.tensor([seconds_per_grid_step(timestamps_s, temporal_patch_size)],
                                        dtype=torch.float32),
        num_visual_tokens=t * h * w // merge_size**2,
        timestamps_s=list(timestamps_s),
    )


def frames_to_patches(frames: np.ndarray, *, patch_size: int = 14, temporal_patch_size: int = 2,
                      merge_size: int = 2) -> torch.Tensor:
    """uint8 [T, H, W, 3] RGB -> uint8 patches [grid_t * grid_h * grid_w, 3 * tps * p * p] in the row layout of
    `frames_to_inputs` (an odd T is padded with the last frame). Patchifying bytes first moves a quarter of
    the data; `normalize_patches` then gives exactly `frames_to_inputs`' values (the same two element-wise
    float32 operations per value, only in another order of elements)."""
    assert frames.ndim == 4 and frames.shape[-1] == 3 and frames.dtype == np.uint8, (frames.shape, frames.dtype)
    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    return patchify(video, patch_size, temporal_patch_size, merge_size)[0]


def normalize_patches(patches: torch.Tensor, channels: int = 3, image_mean=OPENAI_CLIP_MEAN,
                      image_std=OPENAI_CLIP_STD) -> torch.Tensor:
    """uint8 patches [N, C * K] (any device) -> float32 [N, C * K], rescaled and normalised per channel."""
    mean = torch.tensor(image_mean, dtype=torch.float32, device=patches.device) * (1.0 / RESCALE_FACTOR)
    std = torch.tensor(image_std, dtype=torch.float32, device=patches.device) * (1.0 / RESCALE_FACTOR)
    x = patches.view(patches.shape[0], channels, -1).to(torch.float32)
    return ((x - mean[:, None]) / std[:, None]).view(patches.shape[0], -1)


def to_model_inputs(sampled, *, patch_size: int = 14, temporal_patch_size: int = 2,
                    merge_size: int = 2, image_mean=OPENAI_CLIP_MEAN, image_std=OPENAI_CLIP_STD) -> VideoInputs:
    """A SampledVideo -> VideoInputs (see `frames_to_inputs`)."""
    return frames_to_inputs(sampled.frames, sampled.timestamps_s, patch_size=patch_size,
                            temporal_patch_size=temporal_patch_size, merge_size=merge_size,
                            image_mean=image_mean, image_std=image_std)


def family_inputs(sampled, spec) -> VideoInputs:
    """A SampledVideo -> VideoInputs with a model family's processor constants (`ProcessorSpec`)."""
    return to_model_inputs(sampled, patch_size=spec.patch_size, temporal_patch_size=spec.temporal_patch_size,
                           merge_size=spec.merge_size, image_mean=spec.image_mean, image_std=spec.image_std)


def mm_token_type_ids(input_ids: torch.Tensor, video_token_id: int, image_token_id: int | None = None) -> torch.Tensor:
    """Per-token modality ids that transformers v5 needs for 3-D mRoPE: 0 text, 1 image, 2 video.

    input_ids: int [B, L] -> int64 [B, L] (the processor's `create_mm_token_type_ids`).
    """
    types = torch.zeros_like(input_ids, dtype=torch.int64)
    types[input_ids == video_token_id] = 2
    if image_token_id is not None:
        types[input_ids == image_token_id] = 1
    return types
