"""Benchmark: sampling frames by seeking vs decoding a generated 1-hour 1080p H.264 file through.

    omnivideo bench video --out docs/benchmarks/video

The video (1 h, 1920x1080, 30 fps, x264 defaults: keyframe every 250 frames) is made once with
Debian's ffmpeg from a 60 s `testsrc2` segment repeated by stream copy, and cached in `--work`.
Each measurement runs in a fresh child process; its wall time covers probe + sampling (imports
excluded) and its peak RSS comes from `os.wait4` for that child alone. The decode-through
baseline is the cheapest sequential sampler: `grab()` every frame, convert only the sampled ones,
keep nothing else; both methods must return the same timestamps and pixels.
Writes results.json, report.md and video_sampling.png to `--out`.
"""
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from omnivideo.bench.video.report import write_report
from omnivideo.errors import ConfigError

DEFAULT_OUT = Path("docs/benchmarks/video")
DEFAULT_WORK = Path(tempfile.gettempdir()) / "omnivideo-bench-video"
SIZE, FPS, SEGMENT_S, HOUR_S = (1920, 1080), 30, 60, 3600
SPEEDUP_TARGET = 10.0
FRAME_COUNTS = (16, 64, 256)
BASELINE_FRAMES = 64


def make_hour_video(work: Path) -> Path:
    """The 1-hour file, generated unless a complete one is cached in `work`."""
    path = work / "hour_1080p_h264.mp4"
    if path.exists():
        return path
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigError("ffmpeg not found: install it (apt-get install ffmpeg) or pass --video")
    work.mkdir(parents=True, exist_ok=True)
    segment, partial = work / "segment.mp4", work / "hour.partial.mp4"
    w, h = SIZE
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={w}x{h}:rate={FPS}:duration={SEGMENT_S}", "-c:v", "libx264", "-preset",
                    "veryfast", "-crf", "35", "-pix_fmt", "yuv420p", str(segment)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-y", "-stream_loop", str(HOUR_S // SEGMENT_S - 1), "-i", str(segment),
                    "-c", "copy", str(partial)], check=True)
    segment.unlink()
    partial.replace(path)  # only a finished file gets the final name
    return path


def sample_by_seeking(video: str, frames: int):
    from omnivideo.app.video import SamplingConfig, sample_video

    sampled = sample_video(video, SamplingConfig(fps=None, nframes=frames))  # default readers: one per core
    return sampled.timestamps_s, sampled.frames


def sample_by_decoding_through(video: str, frames: int):
    """Sequential pass: decode every frame, convert the one nearest each target, keep only those."""
    import cv2
    import numpy as np

    from omnivideo.app.video import SamplingConfig, plan_sampling, probe_video
    from omnivideo.app.video.reader import resize_frame

    info = probe_video(video)
    plan = plan_sampling(info, SamplingConfig(fps=None, nframes=frames))
    out = np.empty((plan.count, plan.resized_height, plan.resized_width, 3), np.uint8)
    stamps, half = [], 0.5 / info.fps
    cap = cv2.VideoCapture(video, cv2.CAP_FFMPEG)
    while len(stamps) < plan.count and cap.grab():
        pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
        while len(stamps) < plan.count and pts >= plan.timestamps_s[len(stamps)] - half:
            rgb = cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2RGB)
            out[len(stamps)] = resize_frame(rgb, plan.resized_height, plan.resized_width)
            stamps.append(pts)
    cap.release()
    return stamps, out


def child_main(method: str, video: str, frames: int, result_path: str):
    """Runs inside the measured child process."""
    import resource
    import time

    import omnivideo.app.video  # noqa: F401  (imports are not part of the measurement)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    run = sample_by_seeking if method == "seek" else sample_by_decoding_through
    t0, cpu0, load0 = time.perf_counter(), os.times(), os.getloadavg()[0]
    stamps, pixels = run(video, int(frames))
    seconds, cpu1 = time.perf_counter() - t0, os.times()
    Path(result_path).write_text(json.dumps({
        "seconds": seconds, "cpu_seconds": cpu1.user - cpu0.user + cpu1.system - cpu0.system,
        "load_avg_1m": [load0, os.getloadavg()[0]], "rss_before_bytes": rss_before,
        "frames_bytes": int(pixels.nbytes), "timestamps_s": [round(t, 4) for t in stamps],
        "pixels_sha1": hashlib.sha1(pixels.data).hexdigest()}))  # .data: no copy of the frames


def measure(method: str, video: Path, frames: int) -> dict:
    """Run one method in a child process; add its peak RSS (that child only, from wait4)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        code = "import sys; from omnivideo.bench.video.sampling import child_main; child_main(*sys.argv[1:])"
        proc = subprocess.Popen([sys.executable, "-c", code, method, str(video), str(frames), result.name])
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{method} child failed with exit code {proc.returncode}")
        data = json.loads(Path(result.name).read_text())
    data.update(method=method, frames=frames, peak_rss_bytes=usage.ru_maxrss * 1024)
    data["rss_over_baseline_bytes"] = data["peak_rss_bytes"] - data["rss_before_bytes"]
    return data


def run_bench(video: Path, out_dir: Path, frame_counts=FRAME_COUNTS, keyint: int | None = None) -> dict:
    from omnivideo.app.video import probe_video

    info = probe_video(video)
    runs = [measure("seek", video, n) for n in frame_counts]
    baseline = measure("decode_through", video, BASELINE_FRAMES)
    seek = next(r for r in runs if r["frames"] == BASELINE_FRAMES)
    same = seek["timestamps_s"] == baseline["timestamps_s"] and seek["pixels_sha1"] == baseline["pixels_sha1"]
    speedup = baseline["seconds"] / seek["seconds"]
    frame_bytes = SIZE[0] * SIZE[1] * 3
    result = {
        "video": {**info.to_dict(), "path": str(video), "size_bytes": video.stat().st_size, "keyint": keyint},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": runs, "baseline": baseline, "same_frames": same, "speedup": speedup,
        "targets": [
            {"target": f"seek sampling of {BASELINE_FRAMES} frames >= {SPEEDUP_TARGET:g}x faster than decoding through",
             "value": speedup, "goal": SPEEDUP_TARGET, "met": speedup >= SPEEDUP_TARGET},
            {"target": "peak RSS over baseline <= sampled frames + 16 full 1080p frames (decoder buffers)",
             "value": seek["rss_over_baseline_bytes"] / 2**20,
             "goal": (seek["frames_bytes"] + 16 * frame_bytes) / 2**20,
             "met": seek["rss_over_baseline_bytes"] <= seek["frames_bytes"] + 16 * frame_bytes},
            {"target": "both methods return the same frames (timestamps and pixels)", "value": float(same),
             "goal": 1.0, "met": same},
        ],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(result, indent=1))
    write_report(result, out_dir)
    return result
