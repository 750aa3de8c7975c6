"""How many frames to take, when, and at what size: the rules of qwen-vl-utils, without decoding.

The Qwen2.5-VL family was trained on videos prepared by its helper library `qwen-vl-utils`
(`fetch_video`, `smart_nframes`, `smart_resize`). This module reproduces those rules exactly
(same frame count, same resized size for the same inputs; `tests/video/test_video_parity.py`
checks it against the installed library) and turns them into target presentation times.
Qwen3-VL uses the same rules with patch 16 (`fetch_video(..., image_patch_size=16)`): every pixel limit
is in units of factor^2 with factor = patch x merge = 32 instead of 28. `SamplingConfig.factor` carries
it; `SamplingConfig.of(..., factor=32)` / `pixel_defaults(32)` give that family's default limits.

    cfg = SamplingConfig(fps=2.0, max_frames=256)
    plan = plan_sampling(info, cfg)        # info: VideoInfo from probe_video()
    plan.count, plan.timestamps_s, plan.resized_height, plan.resized_width, plan.visual_tokens
"""
import math
from dataclasses import dataclass, field

import torch

from omnivideo.errors import ConfigError, VideoError

# Constants of qwen-vl-utils 0.0.14 (vision_process.py); the names are theirs.
IMAGE_FACTOR = 28  # patch 14 x spatial merge 2: resized sides are multiples of this
FRAME_FACTOR = 2  # temporal patch: frame counts are multiples of this
FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768
VIDEO_MIN_PIXELS = 128 * IMAGE_FACTOR * IMAGE_FACTOR
VIDEO_MAX_PIXELS = 768 * IMAGE_FACTOR * IMAGE_FACTOR
# 90% of a 128k-token context, in pixels (MODEL_SEQ_LEN * factor^2 * 0.9): bounds the whole video.
VIDEO_TOTAL_PIXELS = int(128000 * IMAGE_FACTOR * IMAGE_FACTOR * 0.9)
MAX_RATIO = 200
MERGE_SIZE = 2
VIDEO_MIN_TOKEN_NUM, VIDEO_MAX_TOKEN_NUM, MODEL_SEQ_LEN = 128, 768, 128000


def pixel_defaults(factor: int = IMAGE_FACTOR) -> dict:
    """qwen-vl-utils' default pixel limits for a resize factor (patch x merge: 28 Qwen2.5-VL, 32 Qwen3-VL)."""
    return {"min_pixels": VIDEO_MIN_TOKEN_NUM * factor * factor, "max_pixels": VIDEO_MAX_TOKEN_NUM * factor * factor,
            "total_pixels": int(MODEL_SEQ_LEN * factor * factor * 0.9)}


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """Sampling options, named as in qwen-vl-utils. Exactly one of `fps` / `nframes`.

    `SamplingConfig(nframes=16)` needs `fps=None`; `SamplingConfig.of(nframes=16)` does that for you.
    `start_s` / `end_s` restrict sampling to a time range (seconds from the first frame). `factor`: resized
    sides are multiples of it (the model family's patch x merge; the pixel limits are given in pixels).
    """
    fps: float | None = FPS
    nframes: int | None = None
    min_frames: int = FPS_MIN_FRAMES
    max_frames: int = FPS_MAX_FRAMES
    min_pixels: int = VIDEO_MIN_PIXELS
    max_pixels: int = VIDEO_MAX_PIXELS
    total_pixels: int = VIDEO_TOTAL_PIXELS
    start_s: float | None = None
    end_s: float | None = None
    factor: int = IMAGE_FACTOR

    def __post_init__(self):
        if self.factor < MERGE_SIZE or self.factor % MERGE_SIZE:
            raise ConfigError(f"factor must be a positive multiple of {MERGE_SIZE}, got {self.factor}")
        if (self.fps is None) == (self.nframes is None):
            raise ConfigError(f"give exactly one of fps / nframes, got fps={self.fps} nframes={self.nframes}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"fps must be a positive number, got {self.fps}")
        if self.nframes is not None and self.nframes < FRAME_FACTOR:
            raise ConfigError(f"nframes must be at least {FRAME_FACTOR}, got {self.nframes}")
        if not FRAME_FACTOR <= self.min_frames <= self.max_frames:
            raise ConfigError(f"need {FRAME_FACTOR} <= min_frames <= max_frames, "
                              f"got {self.min_frames}, {self.max_frames}")
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ConfigError(f"need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.total_pixels < self.min_pixels:
            raise ConfigError(f"total_pixels ({self.total_pixels}) is below min_pixels ({self.min_pixels})")
        for name in ("start_s", "end_s"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be a time >= 0 in seconds, got {value}")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ConfigError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")

    @classmethod
    def of(cls, *, fps: float | None = None, nframes: int | None = None, **kwargs) -> "SamplingConfig":
        """CLI-friendly constructor: `nframes` given -> fps off; neither given -> the default 2 fps; pixel
        limits not given -> qwen-vl-utils' defaults for `factor`."""
        if nframes is None and fps is None:
            fps = FPS
        kwargs = {**pixel_defaults(kwargs.get("factor", IMAGE_FACTOR)), **kwargs}
        return cls(fps=fps, nframes=nframes, **kwargs)

    def to_qwen_ele(self) -> dict:
        """The same options as a qwen-vl-utils video element (`video_start` / `video_end` for the range)."""
        ele = {"min_frames": self.min_frames, "max_frames": self.max_frames, "min_pixels": self.min_pixels,
               "max_pixels": self.max_pixels, "total_pixels": self.total_pixels}
        ele.update({"fps": self.fps} if self.fps is not None else {"nframes": self.nframes})
        if self.start_s is not None:
            ele["video_start"] = self.start_s
        if self.end_s is not None:
            ele["video_end"] = self.end_s
        return ele


@dataclass(frozen=True, slots=True)
class SamplingPlan:
    """Where and how big: `count` target times (seconds from the first frame) and the frame size."""
    timestamps_s: tuple[float, ...]
    count: int
    resized_height: int
    resized_width: int
    visual_tokens: int
    frame_range: tuple[int, int] = field(default=(0, 0))  # first/last source frame index (nominal fps)

    factor: int = IMAGE_FACTOR   # patch x merge of the family the plan is for

    @property
    def grid_thw(self) -> tuple[int, int, int]:
        """(t, h, w) of the vision grid in patches (14 or 16 pixels), before the 2x2 merge."""
        patch = self.factor // MERGE_SIZE
        return (self.count // FRAME_FACTOR, self.resized_height // patch, self.resized_width // patch)


def round_by_factor(number: float, factor: int) -> int:
    return round(number / factor) * factor


def ceil_by_factor(number: float, factor: int) -> int:
    return math.ceil(number / factor) * factor


def floor_by_factor(number: float, factor: int) -> int:
    return math.floor(number / factor) * factor


def smart_resize(height: int, width: int, factor: int = IMAGE_FACTOR, min_pixels: float = VIDEO_MIN_PIXELS,
                 max_pixels: float = VIDEO_MAX_PIXELS) -> tuple[int, int]:
    """qwen-vl-utils `smart_resize`: sides multiple of `factor`, area in [min, max], aspect kept.

    One deliberate difference: the shrink branch keeps each side >= `factor` (as transformers'
    copy does); qwen-vl-utils can return 0 there for aspect ratios near 200.
    """
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise VideoError(f"aspect ratio {max(height, width) / min(height, width):.0f}:1 is beyond the "
                         f"model's limit of {MAX_RATIO}:1 ({width}x{height})")
    h_bar = max(factor, round_by_factor(height, factor))
    w_bar = max(factor, round_by_factor(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, floor_by_factor(height / beta, factor))
        w_bar = max(factor, floor_by_factor(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = ceil_by_factor(height * beta, factor)
        w_bar = ceil_by_factor(width * beta, factor)
    return h_bar, w_bar


def smart_nframes(cfg: SamplingConfig, total_frames: int, video_fps: float) -> int:
    """qwen-vl-utils `smart_nframes`: frames to sample from `total_frames` at `video_fps`."""
    if cfg.nframes is not None:
        nframes = round_by_factor(cfg.nframes, FRAME_FACTOR)
    else:
        min_frames = ceil_by_factor(cfg.min_frames, FRAME_FACTOR)
        max_frames = floor_by_factor(cfg.max_frames, FRAME_FACTOR)
        nframes = total_frames / video_fps * cfg.fps
        nframes = min(min(max(nframes, min_frames), max_frames), total_frames)
        nframes = floor_by_factor(nframes, FRAME_FACTOR)
    if not FRAME_FACTOR <= nframes <= total_frames:
        raise VideoError(f"cannot sample {nframes} frames from a range of {total_frames} frame(s): "
                         f"need {FRAME_FACTOR} to {total_frames}; lower --nframes or pick a longer range")
    return nframes


def frame_pixel_limit(cfg: SamplingConfig, nframes: int) -> float:
    """Per-frame pixel cap of `fetch_video`: the total budget shared by the frames, within limits."""
    frame_max = VIDEO_MAX_TOKEN_NUM * cfg.factor * cfg.factor   # fetch_video's VIDEO_FRAME_MAX_PIXELS
    cap = max(min(frame_max, cfg.total_pixels / nframes * FRAME_FACTOR), int(cfg.min_pixels * 1.05))
    return min(cfg.max_pixels, cap)


def frame_range(cfg: SamplingConfig, total_frames: int, video_fps: float) -> tuple[int, int]:
    """qwen-vl-utils `calculate_video_frame_range`: first and last frame index of [start_s, end_s]."""
    if cfg.start_s is None and cfg.end_s is None:
        return 0, total_frames - 1
    max_duration = total_frames / video_fps
    start = math.ceil(min(cfg.start_s, max_duration) * video_fps) if cfg.start_s is not None else 0
    end = total_frames - 1
    if cfg.end_s is not None:
        end = min(math.floor(min(cfg.end_s, max_duration) * video_fps), total_frames - 1)
    if start >= end:
        shown_end = cfg.end_s if cfg.end_s is not None else max_duration
        raise VideoError(f"time range {cfg.start_s or 0:.2f}-{shown_end:.2f} s "
                         f"holds no frames of this {max_duration:.2f} s video")
    return start, end


def visual_tokens(count: int, resized_height: int, resized_width: int, factor: int = IMAGE_FACTOR) -> int:
    """LLM tokens for the video: one per 2x2 merged patch per temporal pair of frames."""
    return (count // FRAME_FACTOR) * (resized_height // factor) * (resized_width // factor)


def plan_sampling(info, cfg: SamplingConfig) -> SamplingPlan:
    """Targets and size for `info` (a VideoInfo: frame_count, fps, width, height) under `cfg`. Pure.

    Targets are the times of qwen-vl-utils' frame indices, `round(linspace(first, last, n)) / fps`:
    on a constant-frame-rate file the reader returns exactly the frames qwen-vl-utils would.
    """
    if info.frame_count < 1 or info.fps <= 0:
        raise VideoError(f"{info.path}: no frame count / frame rate known, cannot plan sampling")
    first, last = frame_range(cfg, info.frame_count, info.fps)
    count = smart_nframes(cfg, last - first + 1, info.fps)
    # torch, float32, as qwen-vl-utils: numpy's float64 linspace rounds some .5 ties the other way
    indices = torch.linspace(first, last, count).round().long().tolist()
    height, width = smart_resize(info.height, info.width, cfg.factor, cfg.min_pixels, frame_pixel_limit(cfg, count))
    return SamplingPlan(timestamps_s=tuple(i / info.fps for i in indices), count=count,
                        resized_height=height, resized_width=width,
                        visual_tokens=visual_tokens(count, height, width, cfg.factor), frame_range=(first, last),
                        factor=cfg.factor)
