"""Parity with qwen-vl-utils: same frame count, frame indices and resized size for the same inputs.

qwen-vl-utils imports torchvision at module import, which cannot load on the CPU stack. So this
test compiles the library's own source, from the installed file: its constants and pure functions
(`smart_nframes`, `smart_resize`, `calculate_video_frame_range`) verbatim, and the size-budget
statements of `fetch_video` (everything between reading the video and resizing it) as one function.
Nothing is copied into this repository; if the library changes those statements, this test follows.
"""
import ast
import importlib.util
import itertools
import math
from pathlib import Path

import pytest
import torch

from omnivideo.errors import VideoError
from omnivideo.app.video import SamplingConfig, VideoInfo, plan_sampling

_STDLIB = {"math", "os", "logging", "typing", "sys", "time", "warnings", "copy", "base64"}
_SKIP_ASSIGN = {"VIDEO_READER_BACKENDS"}  # refers to the torchvision/decord readers


def _vision_process_source() -> str:
    spec = importlib.util.find_spec("qwen_vl_utils")
    if spec is None:
        pytest.fail("qwen-vl-utils is not installed: it is a test dependency (pip install qwen-vl-utils)")
    return (Path(spec.submodule_search_locations[0]) / "vision_process.py").read_text()


def _load_qwen() -> dict:
    """Namespace with qwen-vl-utils' constants, pure functions and `video_size(ele, video)`."""
    tree = ast.parse(_vision_process_source())
    keep, fetch = [], None
    for node in tree.body:
        if isinstance(node, ast.Import) and all(a.name in _STDLIB for a in node.names):
            keep.append(node)
        elif isinstance(node, ast.ImportFrom) and node.module in _STDLIB:
            keep.append(node)
        elif isinstance(node, ast.Assign) and not {getattr(t, "id", None) for t in node.targets} & _SKIP_ASSIGN:
            keep.append(node)
        elif isinstance(node, ast.FunctionDef) and node.name in (
                "round_by_factor", "ceil_by_factor", "floor_by_factor", "smart_resize", "smart_nframes",
                "calculate_video_frame_range"):
            keep.append(node)
        elif isinstance(node, ast.FunctionDef) and node.name == "fetch_video":
            fetch = node
    assert fetch is not None, "qwen-vl-utils has no fetch_video any more"
    texts = [ast.unparse(s) for s in fetch.body]
    begin = next(i for i, t in enumerate(texts) if t.startswith("nframes, _, height, width = video.shape"))
    end = next(i for i, t in enumerate(texts) if t.startswith("video = transforms.functional.resize"))
    body = fetch.body[:3] + fetch.body[begin:end] + ast.parse("return resized_height, resized_width").body
    size_fn = ast.parse("def video_size(ele, video, image_patch_size=14): pass").body[0]
    size_fn.body = body
    module = ast.fix_missing_locations(ast.Module(body=keep + [size_fn], type_ignores=[]))
    namespace: dict = {}
    exec(compile(module, "qwen_vl_utils/vision_process.py", "exec"), namespace)
    return namespace


QWEN = _load_qwen()


def qwen_plan(ele: dict, frames: int, fps: float, height: int, width: int, patch: int = 14):
    """(count, frame indices, resized h, resized w) as qwen-vl-utils' decord/torchcodec path computes them
    (`patch`: its `image_patch_size`, 14 for Qwen2.5-VL, 16 for Qwen3-VL)."""
    start, end, total = QWEN["calculate_video_frame_range"](ele, frames, fps)
    count = QWEN["smart_nframes"](ele, total_frames=total, video_fps=fps)
    indices = torch.linspace(start, end, count).round().long().tolist()
    video = torch.empty((count, 3, height, width), device="meta")  # only its shape is read
    return count, indices, *QWEN["video_size"](ele, video, image_patch_size=patch)


def ours(cfg: SamplingConfig, frames: int, fps: float, height: int, width: int):
    info = VideoInfo(path="grid", duration_s=frames / fps, fps=fps, frame_count=frames, width=width,
                     height=height, codec="h264")
    plan = plan_sampling(info, cfg)
    indices = [round(t * fps) for t in plan.timestamps_s]
    return plan.count, indices, plan.resized_height, plan.resized_width


DURATIONS_S = [1.0, 3.3, 17.0, 61.0, 600.0, 3600.0]
SOURCE_FPS = [10.0, 23.976, 30.0, 59.94]
SIZES = [(240, 320), (1080, 1920), (1920, 1080), (360, 640), (2160, 3840), (100, 1000)]
OPTIONS = [
    {},
    {"fps": 1.0, "max_frames": 64},
    {"fps": 0.5, "min_frames": 8, "max_frames": 129},
    {"fps": 4.0, "min_pixels": 64 * 28 * 28, "max_pixels": 256 * 28 * 28},
    {"fps": 2.0, "total_pixels": 20480 * 28 * 28},
    {"fps": None, "nframes": 16},
    {"fps": None, "nframes": 33},
    {"fps": 2.0, "start_s": 0.7, "end_s": 12.25},
    {"fps": 1.0, "start_s": 30.0},
]


@pytest.mark.parametrize("patch", [14, 16], ids=["qwen2.5-vl", "qwen3-vl"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_frame_counts_indices_and_sizes_equal_qwen_vl_utils(options, patch):
    # Qwen3-VL: the same library with image_patch_size=16 (factor 32), our SamplingConfig with factor 32 and
    # that factor's default pixel limits (SamplingConfig.of)
    cfg = SamplingConfig.of(**options, factor=2 * patch) if patch != 14 else SamplingConfig(**options)
    compared = refused = 0
    for duration, fps, (height, width) in itertools.product(DURATIONS_S, SOURCE_FPS, SIZES):
        frames = max(1, math.floor(duration * fps))
        try:
            # the defaults case passes no keys at all, so qwen-vl-utils' own defaults apply
            expected = qwen_plan(cfg.to_qwen_ele() if options else {}, frames, fps, height, width, patch)
        except ValueError:  # qwen-vl-utils refuses (too few frames, empty range): so must we
            with pytest.raises(VideoError):
                ours(cfg, frames, fps, height, width)
            refused += 1
            continue
        got = ours(cfg, frames, fps, height, width)
        case = f"duration={duration} fps={fps} size={height}x{width}"
        assert got[0] == expected[0], f"{case}: count {got[0]} != qwen {expected[0]}"
        assert got[1] == expected[1], f"{case}: frame indices differ"
        assert got[2:] == expected[2:], f"{case}: size {got[2:]} != qwen {expected[2:]}"
        compared += 1
    assert compared >= 50, f"only {compared} comparable cases ({refused} refused): the grid is too narrow"


def test_defaults_are_qwen_vl_utils_defaults():
    cfg = SamplingConfig()
    assert cfg.fps == QWEN["FPS"] and cfg.min_frames == QWEN["FPS_MIN_FRAMES"]
    assert cfg.max_frames == QWEN["FPS_MAX_FRAMES"]
    assert cfg.min_pixels == QWEN["VIDEO_MIN_TOKEN_NUM"] * 28 * 28
    assert cfg.max_pixels == QWEN["VIDEO_MAX_TOKEN_NUM"] * 28 * 28
    assert cfg.total_pixels == QWEN["MODEL_SEQ_LEN"] * 28 * 28 * 0.9


def test_qwen3_vl_defaults_are_qwen_vl_utils_defaults_at_patch_16():
    cfg = SamplingConfig.of(factor=32)
    assert (cfg.fps, cfg.min_frames, cfg.max_frames) == (QWEN["FPS"], QWEN["FPS_MIN_FRAMES"], QWEN["FPS_MAX_FRAMES"])
    assert cfg.min_pixels == QWEN["VIDEO_MIN_TOKEN_NUM"] * 32 * 32
    assert cfg.max_pixels == QWEN["VIDEO_MAX_TOKEN_NUM"] * 32 * 32
    assert cfg.total_pixels == int(QWEN["MODEL_SEQ_LEN"] * 32 * 32 * 0.9)


@pytest.mark.parametrize("options", OPTIONS[:6], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_qwen3_vl_timestamp_text_equals_the_processor(options):
    """Group times and their text as transformers' Qwen3VLProcessor computes them from the same frame indices
    (`_calculate_timestamps`, the real function: it reads nothing of its instance) over the grid."""
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

    from omnivideo.engine.family import VideoLayout
    from omnivideo.engine.family.qwen3_vl import timestamp_text

    cfg = SamplingConfig.of(**options, factor=32)
    compared = 0
    for duration, fps, (height, width) in itertools.product(DURATIONS_S, SOURCE_FPS, SIZES[:2]):
        frames = max(1, math.floor(duration * fps))
        info = VideoInfo(path="grid", duration_s=frames / fps, fps=fps, frame_count=frames, width=width,
                         height=height, codec="h264")
        try:
            plan = plan_sampling(info, cfg)
        except VideoError:
            continue
        indices = [round(t * fps) for t in plan.timestamps_s]
        theirs = Qwen3VLProcessor._calculate_timestamps(None, list(indices), fps, 2)
        layout = VideoLayout.from_frames(plan.grid_thw, 2, plan.timestamps_s, 2)
        assert layout.grid_thw[1] * 16 == plan.resized_height and layout.grid_thw[2] * 16 == plan.resized_width
        assert len(layout.group_times_s) == len(theirs) == plan.grid_thw[0]
        assert [timestamp_text(t) for t in layout.group_times_s] == [f"<{t:.1f} seconds>" for t in theirs]
        compared += 1
    assert compared >= 20
