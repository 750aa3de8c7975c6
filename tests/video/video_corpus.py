"""Test videos made with Debian's ffmpeg, once per test session, plus ffprobe ground truth.

Every generated frame carries its source frame index as a 12-bit barcode (white/black boxes in
the top rows), drawn by ffmpeg's `drawbox` with `enable` expressions on the frame number, so a
test can tell which frame a decoder really returned, whatever the timestamps say.

Pytest fixtures are imported by the test modules (`from video_corpus import corpus  # noqa: F401`);
the corpus itself is cached per process, so it is built once however many modules use it.
"""
import functools
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
BITS = 12
SMALL = (320, 240)
LONG_SIZE, LONG_FPS, LONG_SEGMENT_S, LONG_LOOPS = (1920, 1080), 25, 20, 30  # 30 x 20 s = 10 min


@dataclass(frozen=True)
class Clip:
    """A generated file; `bar` is the barcode box size (width, height) in source pixels."""
    path: Path
    fps: float
    bar: tuple[int, int] = (20, 16)


def barcode_filter(bar_w: int, bar_h: int) -> str:
    """ffmpeg filter chain drawing frame number n (mod 2**BITS) as BITS boxes on a black strip."""
    boxes = [f"drawbox=x=0:y=0:w={bar_w * BITS}:h={bar_h}:color=black:t=fill"]
    boxes += [f"drawbox=x={b * bar_w}:y=0:w={bar_w}:h={bar_h}:color=white:t=fill:"
              f"enable='eq(mod(floor(n/{2 ** b}),2),1)'" for b in range(BITS)]
    return ",".join(boxes)


def read_barcode(rgb: np.ndarray, bar: tuple[int, int], scale: float = 1.0) -> int:
    """Frame index drawn by `barcode_filter`, read from an RGB frame resized by `scale`."""
    bar_w, bar_h = bar[0] * scale, bar[1] * scale
    value = 0
    for b in range(BITS):
        x0, x1 = int(b * bar_w + bar_w * 0.3), int((b + 1) * bar_w - bar_w * 0.3)
        y0, y1 = int(bar_h * 0.25), max(int(bar_h * 0.75), int(bar_h * 0.25) + 1)
        if rgb[y0:y1, x0:x1].mean() > 127:
            value |= 1 << b
    return value


def ffmpeg(*args: str, cwd: Path):
    subprocess.run([FFMPEG, "-v", "error", "-nostdin", "-y", *args], cwd=cwd, check=True)


def ffprobe_json(path: Path, *args: str) -> dict:
    out = subprocess.run([FFPROBE, "-v", "error", "-of", "json", *args, str(path)],
                         capture_output=True, check=True, text=True).stdout
    return json.loads(out)


def ffprobe_pts(path: Path) -> np.ndarray:
    """Presentation times of every video frame (packet PTS, sorted), from the stream's start."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries", "packet=pts_time:stream=start_time")
    start = float(data["streams"][0].get("start_time") or 0.0)
    return np.sort(np.array([float(p["pts_time"]) for p in data["packets"]])) - start


def ffprobe_duration(path: Path) -> float:
    return float(ffprobe_json(path, "-show_entries", "format=duration")["format"]["duration"])


def _small_source(fps: float, seconds: float) -> list[str]:
    return ["-f", "lavfi", "-i", f"testsrc2=size={SMALL[0]}x{SMALL[1]}:rate={fps}:duration={seconds}",
            "-vf", barcode_filter(20, 16)]


def _make_playable(root: Path) -> dict[str, Clip]:
    clips = {
        "h264": Clip(root / "h264.mp4", 30),
        "hevc": Clip(root / "hevc.mkv", 25),
        "vp9": Clip(root / "vp9.webm", 24),
        "mjpeg": Clip(root / "mjpeg.avi", 15),
        "vfr": Clip(root / "vfr.mp4", 30),
        "rotated": Clip(root / "rotated.mp4", 30),
    }
    ffmpeg(*_small_source(30, 6), "-c:v", "libx264", "-preset", "veryfast", "-g", "48", "-pix_fmt", "yuv420p",
           "h264.mp4", cwd=root)  # veryfast keeps B-frames: decode order != presentation order
    ffmpeg(*_small_source(25, 6), "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error",
           "-pix_fmt", "yuv420p", "hevc.mkv", cwd=root)
    ffmpeg(*_small_source(24, 6), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "400k",
           "vp9.webm", cwd=root)
    ffmpeg(*_small_source(15, 6), "-c:v", "mjpeg", "-q:v", "3", "mjpeg.avi", cwd=root)
    # Variable frame rate: frames 0-59 every 1/30 s, 60-119 every 1/10 s, 120-179 every 1/30 s again.
    vfr_pts = "if(lt(N,60),N/30,if(lt(N,120),2+(N-60)/10,8+(N-120)/30))/TB"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={SMALL[0]}x{SMALL[1]}:rate=30:duration=6",
           "-vf", f"{barcode_filter(20, 16)},setpts='{vfr_pts}'", "-fps_mode", "vfr", "-c:v", "libx264",
           "-preset", "veryfast", "-pix_fmt", "yuv420p", "vfr.mp4", cwd=root)
    # Rotation metadata only (the pixels stay landscape): players and OpenCV show it portrait.
    ffmpeg("-i", "h264.mp4", "-c", "copy", "-metadata:s:v:0", "rotate=90", "rotated.mp4", cwd=root)
    return clips


def _make_long(root: Path) -> Clip:
    """10 min of 1080p H.264 from one 20 s segment (encoded once) repeated by stream copy."""
    w, h = LONG_SIZE
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={w}x{h}:rate={LONG_FPS}:duration={LONG_SEGMENT_S}",
           "-vf", barcode_filter(60, 48), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-g", "250",
           "-pix_fmt", "yuv420p", "segment.mp4", cwd=root)
    ffmpeg("-stream_loop", str(LONG_LOOPS - 1), "-i", "segment.mp4", "-c", "copy", "long1080.mp4", cwd=root)
    (root / "segment.mp4").unlink()
    return Clip(root / "long1080.mp4", LONG_FPS, bar=(60, 48))


def _make_broken(root: Path, h264: Path) -> dict[str, Path]:
    broken = root / "broken"
    broken.mkdir()
    (broken / "empty.mp4").write_bytes(b"")
    (broken / "text.mp4").write_text("this is a text file, not a video\n" * 20)
    data = h264.read_bytes()  # moov at the end (ffmpeg default): cutting it loses the index
    (broken / "truncated.mp4").write_bytes(data[: len(data) // 2])
    ffmpeg("-i", str(h264), "-c", "copy", "-movflags", "+faststart", "faststart.mp4", cwd=broken)
    whole = (broken / "faststart.mp4").read_bytes()  # index first: the header promises 6 s of frames
    (broken / "truncated_indexed.mp4").write_bytes(whole[: len(whole) // 2])
    (broken / "faststart.mp4").unlink()
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", "audio_only.mp4", cwd=broken)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "libopus", "audio_only_webm.webm", cwd=broken)
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "audio.mp3", cwd=broken)
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-c:v", "libaom-av1",
           "-cpu-used", "8", "-b:v", "100k", "av1.mkv", cwd=broken)
    (broken / "a_directory.mp4").mkdir()
    return {p.stem: p for p in broken.iterdir()}


@dataclass(frozen=True)
class Corpus:
    root: Path
    clips: dict[str, Clip]
    broken: dict[str, Path]


@functools.cache
def build_corpus(root: Path) -> Corpus:
    clips = _make_playable(root)
    clips["long"] = _make_long(root)
    return Corpus(root, clips, _make_broken(root, clips["h264"].path))


_ROOT: list[Path] = []


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    """The generated corpus (built on first use, shared by every module of the session)."""
    if FFMPEG is None or FFPROBE is None:
        pytest.fail("ffmpeg/ffprobe not found: install Debian's ffmpeg (apt-get install ffmpeg)")
    if not _ROOT:
        _ROOT.append(tmp_path_factory.mktemp("video_corpus"))
    return build_corpus(_ROOT[0])
