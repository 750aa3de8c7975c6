"""Pipelined frames: several readers decode time segments in parallel while the GPU encodes earlier ones.

A `FrameStream` is the engine's `VisionSource` (omnivideo/engine/prefill/ingest_pipeline.py). Worker threads take
segments of `segment_groups` frame groups in order (dynamic assignment: a free reader takes the next
segment and seeks to it), decode them, and patchify the bytes (`frames_to_patches`, pinned for a
fast copy when the device is a GPU). The consumer (the engine, on the calling thread) takes the
segments in order, normalises them on the device and encodes them. Bounded memory: a reader does not
start a segment more than `max_ahead` segments beyond the one the consumer waits for, so at most
`max_ahead` decoded segments wait at any time, whatever the video's length. The first task decodes
the last frame, so the seconds per grid step (from the first and last real timestamps) are known
before the first prefill chunk needs its M-RoPE positions.

    with open_video_stream("match.mp4", SamplingConfig(fps=2), vision=cfg.vision_config, device=dev) as s:
        conv = engine.ingest_stream(chat.prefix_ids(s.num_visual_tokens), s, progress, cancel, timeline)
    s.timestamps_s   # real PTS of every sampled frame, as sample_video gives them

Progress ("probe", "decode") and cancellation run on the consumer's thread (UI callbacks need not be
thread-safe); readers stop at their next frame once the stream is closed, cancelled or failed.
"""
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from omnivideo.errors import ConfigError
from omnivideo.app.video.frames import default_workers
from omnivideo.app.video.info import probe_video
from omnivideo.app.video.processor import frames_to_patches, grid_step_from_ends, normalize_patches
from omnivideo.progress import raise_if_cancelled, report
from omnivideo.app.video.reader import VideoReader
from omnivideo.app.video.sampling import SamplingConfig, plan_sampling

EDGE = -1  # the task that decodes the last frame first


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """segment_groups: frame groups per reader task; workers: parallel readers (None: one per core, at most
    4); max_ahead: decoded segments that may wait for the consumer (None: 2 per reader).

    Small segments pipeline better: on the H100 box (16 cores) the 2-minute 1080p file (96 frames) reached
    its first token in 5.06 s with 4 readers over 4-group segments, against 6.96 s over 16-group segments
    and 7.21 s decoding everything first (docs/benchmarks/ingest/probe_segments.json, one process): the
    GPU starts on the first segments sooner, and the extra keyframe seeks cost less than they overlap.
    One reader is much slower (10.5-11.4 s): the readers' parallelism is what makes decoding fast."""
    segment_groups: int = 4
    workers: int | None = None
    max_ahead: int | None = None

    def __post_init__(self):
        if self.segment_groups < 1:
            raise ConfigError(f"segment_groups must be >= 1, got {self.segment_groups}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.max_ahead is not None and self.max_ahead < 1:
            raise ConfigError(f"max_ahead must be >= 1, got {self.max_ahead}")


class _Stopped(Exception):
    pass


class FrameStream:
    """Frames [count, height, width, 3] produced by `load(state, indices, stopped) -> (uint8 frames, stamps)` in
    worker threads (`open_state()` makes each worker's state, e.g. a VideoReader; closed with `.close()`)."""

    def __init__(self, count: int, height: int, width: int, load: Callable, open_state: Callable, *, vision,
                 device: torch.device, config: StreamConfig | None = None, progress=None, cancel=None,
                 timeline=None, normalization: tuple | None = None):
        cfg = config or StreamConfig()
        # (mean, std) per channel of the model family's processor (None: Qwen2.5-VL's OpenAI-CLIP values)
        self._norm = {} if normalization is None else {"image_mean": normalization[0], "image_std": normalization[1]}
        self.count, self.device, self.progress, self.cancel, self.timeline = count, device, progress, cancel, timeline
        self._patch = dict(patch_size=vision.patch_size, temporal_patch_size=vision.temporal_patch_size,
                           merge_size=vision.spatial_merge_size)
        tps, merge = vision.temporal_patch_size, vision.spatial_merge_size
        assert height % (vision.patch_size * merge) == 0 and width % (vision.patch_size * merge) == 0, (height, width)
        self.grid_thw = (-(-count // tps), height // vision.patch_size, width // vision.patch_size)
        self.num_visual_tokens = self.grid_thw[0] * self.grid_thw[1] * self.grid_thw[2] // merge ** 2
        self.segment_frames = cfg.segment_groups * tps
        self.segments = -(-count // self.segment_frames)
        workers = min(cfg.workers or default_workers(count), self.segments + 1)
        self.max_ahead = cfg.max_ahead or 2 * workers
        self._load, self._open_state = load, open_state
        self._stamps: list[float | None] = [None] * count
        self._edge: tuple[float, np.ndarray] | None = None
        self._done: dict[int, torch.Tensor] = {}
        self._decoded_frames = 0
        self._next_task, self._consumed = EDGE, 0
        self._stop, self._error = False, None
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._worker, args=(i,), name=f"video-reader-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    # -- worker side ------------------------------------------------------------------------------------
    def _take_task(self) -> int | None:
        with self._cond:
            while not self._stop and self._error is None and self._next_task >= 0 \
                    and self._next_task < self.segments and self._next_task >= self._consumed + self.max_ahead:
                self._cond.wait()
            if self._stop or self._error is not None or self._next_task >= self.segments:
                return None
            task, self._next_task = self._next_task, self._next_task + 1
            return task

    def _worker(self, lane: int) -> None:
        state = None
        try:
            state = self._open_state()
            while (task := self._take_task()) is not None:
                self._run(state, task, f"reader {lane}")
        except _Stopped:
            pass
        except BaseException as e:  # handed to the consumer, which raises it on its thread
            with self._cond:
                self._error = e
                self._cond.notify_all()
        finally:
            if state is not None:
                state.close()

    def _stopped(self) -> bool:
        return self._stop or self._error is not None

    def _run(self, state, task: int, lane: str) -> None:
        if task == EDGE:
            t0 = self._now()
            frames, stamps = self._load(state, [self.count - 1], self._stopped)
            if self.timeline is not None:
                self.timeline.add("decode", EDGE, t0, self._now(), lane)
            with self._cond:
                self._edge = (stamps[0], frames[0])
                self._cond.notify_all()
            return
        t0 = self._now()
        first = task * self.segment_frames
        indices = list(range(first, min(self.count, first + self.segment_frames)))
        if indices[-1] != self.count - 1:
            frames, stamps = self._load(state, indices, self._stopped)
        else:  # the frame the edge task decoded: one PTS for the grid step and the list, whoever decodes it
            frames, stamps = self._load(state, indices[:-1], self._stopped) if len(indices) > 1 else (None, [])
            with self._cond:
                while self._edge is None and not self._stopped():
                    self._cond.wait()
            if self._edge is None:
                raise _Stopped
            last = self._edge[1][None]
            frames = last if frames is None else np.concatenate((frames, last))
            stamps = list(stamps) + [self._edge[0]]
        t1 = self._now()
        patches = frames_to_patches(frames, **self._patch)
        if self.device.type == "cuda":
            patches = patches.pin_memory()  # so the copy to the device is asynchronous
        t2 = self._now()
        if self.timeline is not None:
            self.timeline.add("decode", task, t0, t1, lane)
            self.timeline.add("preprocess", task, t1, t2, lane)
        with self._cond:
            self._stamps[first:first + len(stamps)] = stamps
            self._done[task] = patches
            self._decoded_frames += len(stamps)
            self._cond.notify_all()

    def _now(self) -> float:
        return self.timeline.now() if self.timeline is not None else 0.0

    # -- consumer side ----------------------------------------------------------------------------------
    def _wait(self, ready: Callable[[], bool]) -> None:
        """Block until `ready()`; report decode progress; raise a reader's error or VideoCancelled meanwhile."""
        while True:
            with self._cond:
                if self._error is not None:
                    raise self._error
                if ready():
                    return
                self._cond.wait(timeout=0.05)
                decoded = self._decoded_frames
            raise_if_cancelled(self.cancel, "video decoding")
            report(self.progress, decoded, self.count, "decode")

    def second_per_grid_t(self) -> float:
        self._wait(lambda: self._edge is not None and self._stamps[0] is not None)
        return grid_step_from_ends(self._stamps[0], self._edge[0], self.count, self._patch["temporal_patch_size"])

    def __iter__(self):
        for task in range(self.segments):
            self._wait(lambda: task in self._done)
            with self._cond:
                patches = self._done.pop(task)
                self._consumed = task + 1
                self._cond.notify_all()
                decoded = self._decoded_frames  # frames decoded so far (only grows): some may wait ahead
            report(self.progress, decoded, self.count, "decode")
            yield normalize_patches(patches.to(self.device, non_blocking=True), **self._norm)

    def groups_ready(self) -> int:
        """Frame groups decoded and waiting, in order, that iterating would yield now without blocking (the
        ingest pipeline sizes its prefill rounds by it, omnivideo/engine/prefill/ingest_pipeline.py)."""
        with self._cond:
            task = self._consumed
            while task in self._done:
                task += 1
            tps = self._patch["temporal_patch_size"]
            first, stop = (min(self.count, t * self.segment_frames) for t in (self._consumed, task))
            return -(-stop // tps) - -(-first // tps)

    @property
    def timestamps_s(self) -> list[float]:
        assert all(s is not None for s in self._stamps), "the stream has not been read to its end"
        return list(self._stamps)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        for t in self._threads:
            t.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _reader_load(plan):
    def load(reader: VideoReader, indices: list[int], stopped) -> tuple[np.ndarray, list[float]]:
        frames = np.empty((len(indices), plan.resized_height, plan.resized_width, 3), np.uint8)
        stamps = []
        for j, i in enumerate(indices):
            if stopped():
                raise _Stopped
            pts, frames[j] = reader.frame_near(plan.timestamps_s[i])
            stamps.append(pts)
        return frames, stamps
    return load


def open_video_stream(path: str | os.PathLike, sampling: SamplingConfig | None = None, *, vision,
                      device: torch.device, config: StreamConfig | None = None, progress=None, cancel=None,
                      timeline=None, info=None, normalization: tuple | None = None) -> FrameStream:
    """Probe (unless `info`), plan as `sample_video` does, and start decoding `path` (see the module doc).
    `vision`: the model's vision config (patch_size, temporal_patch_size, spatial_merge_size);
    `normalization`: (mean, std) of the family's processor (None: OpenAI-CLIP)."""
    if info is None:
        report(progress, 0, 1, "probe")
        info = probe_video(path)
        report(progress, 1, 1, "probe")
    plan = plan_sampling(info, sampling or SamplingConfig())
    cfg = config or StreamConfig()
    workers = cfg.workers or default_workers(plan.count)
    threads = max(1, (os.cpu_count() or 1) // workers)
    stream = FrameStream(plan.count, plan.resized_height, plan.resized_width, _reader_load(plan),
                         lambda: VideoReader(path, output_size=(plan.resized_height, plan.resized_width),
                                             threads=threads),
                         vision=vision, device=device, config=cfg, progress=progress, cancel=cancel,
                         timeline=timeline, normalization=normalization)
    stream.info, stream.plan = info, plan
    return stream


class _NoState:
    def close(self):
        pass


def array_stream(frames: np.ndarray, timestamps_s: list[float], *, vision, device: torch.device,
                 config: StreamConfig | None = None, progress=None, cancel=None, timeline=None,
                 normalization: tuple | None = None) -> FrameStream:
    """A FrameStream over frames already decoded (uint8 [T, H, W, 3]): the workers only patchify.
    `normalization`: (mean, std) of the family's processor (None: OpenAI-CLIP)."""
    def load(_state, indices, _stopped):
        return frames[indices[0]:indices[-1] + 1], [timestamps_s[i] for i in indices]

    t, h, w, _ = frames.shape
    return FrameStream(t, h, w, load, _NoState, vision=vision, device=device, config=config, progress=progress,
                       cancel=cancel, timeline=timeline, normalization=normalization)
