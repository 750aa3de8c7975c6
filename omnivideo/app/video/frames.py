"""Decode the planned frames of a video, resized as qwen-vl-utils does, with their real timestamps.

Memory is bounded by the output: the frame array [T, H', W', 3] is allocated once from the plan and
each reader resizes a decoded frame as soon as it is converted, so one full-size frame per reader
exists at a time, whatever the length of the video. Readers (one per core, up to 4) take contiguous
runs of the targets, so each still decodes forward between close targets.

    sampled = sample_video("lecture.mp4", SamplingConfig(fps=1.0, max_frames=128))
    sampled.frames.shape        # (128, 308, 560, 3) uint8 RGB
    sampled.timestamps_s[:3]    # real PTS of the returned frames: [0.0, 28.3, 56.6]
"""
import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from omnivideo.app.video.info import VideoInfo, probe_video
from omnivideo.progress import ProgressCallback, raise_if_cancelled, report
from omnivideo.app.video.reader import VideoReader, resize_frame  # noqa: F401  (re-exported)
from omnivideo.app.video.sampling import SamplingConfig, SamplingPlan, plan_sampling


@dataclass(frozen=True, slots=True, eq=False)
class SampledVideo:
    """`frames` uint8 [T, resized_height, resized_width, 3] RGB; `timestamps_s[i]` is frame i's PTS."""
    info: VideoInfo
    plan: SamplingPlan
    frames: np.ndarray
    timestamps_s: list[float]

    def __post_init__(self):
        t, h, w = self.plan.count, self.plan.resized_height, self.plan.resized_width
        assert self.frames.shape == (t, h, w, 3) and self.frames.dtype == np.uint8, self.frames.shape
        assert len(self.timestamps_s) == t


MAX_WORKERS = 4  # parallel readers; each decodes its own contiguous run of targets
MIN_FRAMES_PER_WORKER = 4


def default_workers(count: int) -> int:
    """One reader per core (up to MAX_WORKERS): seeks restart the decoder, so parallel readers
    scale where one decoder's own threads do not."""
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1, count // MIN_FRAMES_PER_WORKER))


def _decode_run(path, plan: SamplingPlan, indices, frames: np.ndarray, stamps: list, threads: int,
                stop: threading.Event, done: queue.SimpleQueue):
    with VideoReader(path, output_size=(plan.resized_height, plan.resized_width), threads=threads) as reader:
        for i in indices:
            if stop.is_set():
                return
            stamps[i], frames[i] = reader.frame_near(plan.timestamps_s[i])
            done.put(i)


def _wait_for_a_frame(done: queue.SimpleQueue, futures, cancel):
    """Block until a reader finishes a frame; raise a reader's error or VideoCancelled meanwhile."""
    while True:
        raise_if_cancelled(cancel, "video sampling")
        try:
            return done.get(timeout=0.05)
        except queue.Empty:
            for future in futures:
                if future.done() and future.exception() is not None:
                    raise future.exception()


def decode_planned_frames(path, plan: SamplingPlan, workers: int, progress=None, cancel=None):
    """(frames uint8 [T, H', W', 3], real PTS per frame) for `plan`, with `workers` parallel readers.

    Progress and cancellation run on the calling thread (UI callbacks need not be thread-safe);
    readers stop at their next frame once sampling is cancelled or one of them fails.
    """
    frames = np.empty((plan.count, plan.resized_height, plan.resized_width, 3), np.uint8)
    stamps = [0.0] * plan.count
    runs = [r for r in np.array_split(np.arange(plan.count), workers) if len(r)]
    threads = max(1, (os.cpu_count() or 1) // len(runs))
    stop, done = threading.Event(), queue.SimpleQueue()
    report(progress, 0, plan.count, "sample")
    with ThreadPoolExecutor(len(runs), thread_name_prefix="video-reader") as pool:
        futures = [pool.submit(_decode_run, path, plan, run, frames, stamps, threads, stop, done) for run in runs]
        try:
            for n in range(1, plan.count + 1):
                _wait_for_a_frame(done, futures, cancel)
                report(progress, n, plan.count, "sample")
        finally:
            stop.set()
    return frames, stamps


def sample_video(path: str | os.PathLike, cfg: SamplingConfig | None = None,
                 progress: ProgressCallback | None = None, cancel=None,
                 info: VideoInfo | None = None, workers: int | None = None) -> SampledVideo:
    """Probe (unless `info` is given), plan and decode the frames of `path`.

    Args:
        progress: called as progress(done, total, "probe" | "sample") after each step.
        cancel: a CancelToken / threading.Event / object with `.cancelled`, checked between frames;
            raises VideoCancelled when set.
        workers: parallel readers (default: one per core, at most 4).
    """
    cfg = cfg or SamplingConfig()
    if info is None:
        report(progress, 0, 1, "probe")
        info = probe_video(path)
        report(progress, 1, 1, "probe")
    plan = plan_sampling(info, cfg)
    frames, stamps = decode_planned_frames(path, plan, workers or default_workers(plan.count), progress, cancel)
    return SampledVideo(info=info, plan=plan, frames=frames, timestamps_s=stamps)
