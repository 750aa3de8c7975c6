"""Write a synthetic video to a real file: H.264 through ffmpeg when it is on PATH, else OpenCV's mp4v.

Frame i shows time i / fps. H.264 is written at crf 18 (visually lossless for flat synthetic scenes,
so decoded frames stay within a few grey levels of `render_frame`); mp4v is OpenCV's built-in
fallback and has visibly more ringing. The file appears atomically (temp name, then rename).

    info = write_video(spec, "clip.mp4", fps=10)    # WrittenVideo(path=..., codec='h264', frames=600)
"""
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2

from omnivideo.errors import ConfigError
from omnivideo.synth.render import render_frame
from omnivideo.synth.scene import VideoSpec

CODECS = ("auto", "h264", "mp4v")
H264_CRF = 18


@dataclass(frozen=True, slots=True)
class WrittenVideo:
    path: Path
    codec: str      # "h264" or "mp4v"
    fps: float
    frames: int


def _check_target(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a video file name")
    if not parent.is_dir():
        raise ConfigError(f"cannot write {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"cannot write {path}: folder {parent} is not writable")


def _frames(spec: VideoSpec, fps: float, count: int):
    for i in range(count):
        yield render_frame(spec, i / fps)


def _write_h264(spec: VideoSpec, tmp: Path, fps: float, count: int) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
           "-s", f"{spec.size}x{spec.size}", "-r", f"{fps}", "-i", "-", "-c:v", "libx264", "-preset", "medium",
           "-crf", str(H264_CRF), "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(tmp)]
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        try:
            for frame in _frames(spec, fps, count):
                proc.stdin.write(frame.tobytes())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg stopped early: its stderr below says why
        err = proc.stderr.read().decode(errors="replace").strip()
        code = proc.wait()
    if code != 0:
        raise ConfigError(f"ffmpeg could not write {tmp.name}: {err.splitlines()[-1] if err else f'exit {code}'}")


def _write_mp4v(spec: VideoSpec, tmp: Path, fps: float, count: int) -> None:
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (spec.size, spec.size))
    if not writer.isOpened():
        raise ConfigError(f"OpenCV could not open a video writer for {tmp}")
    try:
        for frame in _frames(spec, fps, count):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()


def write_video(spec: VideoSpec, path: str | os.PathLike, fps: float = 10.0, codec: str = "auto") -> WrittenVideo:
    """Render every frame of `spec` at `fps` into `path` (.mp4). Raises ConfigError on a bad target."""
    if codec not in CODECS:
        raise ConfigError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if not (isinstance(fps, (int, float)) and 1 <= fps <= 60):
        raise ConfigError(f"fps must be between 1 and 60, got {fps!r}")
    path = Path(path)
    _check_target(path)
    if codec == "auto":
        codec = "h264" if shutil.which("ffmpeg") else "mp4v"
    elif codec == "h264" and not shutil.which("ffmpeg"):
        raise ConfigError("codec h264 needs ffmpeg on PATH; use --codec mp4v")
    count = int(round(spec.duration_s * fps))
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mp4", dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    tmp = Path(name)
    try:
        (_write_h264 if codec == "h264" else _write_mp4v)(spec, tmp, float(fps), count)
        os.chmod(tmp, 0o644)   # mkstemp made it private; a video is an ordinary file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return WrittenVideo(path=path, codec=codec, fps=float(fps), frames=count)
