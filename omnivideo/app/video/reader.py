"""OpenCV video reader that finds frames by presentation time (PTS), not by frame index.

Why not `CAP_PROP_POS_FRAMES` or `set(CAP_PROP_POS_MSEC)` alone: OpenCV converts both through the
average frame rate, which is wrong on variable-frame-rate files (a seek asked for 12.0 s lands at
8.1 s, and near the end it fails outright). So a seek here is only a jump: the reader reads the real
PTS of the frame it landed on (`CAP_PROP_POS_MSEC` after `grab()` is exact), corrects and retries
within a bracket, then decodes forward with `grab()` (no colour conversion) to the frame nearest the
target. At most one full-size frame is alive at any time (two without `output_size`).

    with VideoReader("clip.mp4") as reader:
        for pts_s, rgb in reader.frames_at([0.0, 1.5, 3.0]):   # rgb: uint8 [H, W, 3]
            ...
"""
import os

import cv2
import numpy as np
from PIL import Image

from omnivideo.errors import VideoError
from omnivideo.app.video.container import explain_open_failure

FORWARD_LIMIT_FRAMES = 100  # decode forward instead of seeking when the target is this close: a
# seek decodes from the previous keyframe anyway (x264 default GOP 250 -> ~140 frames on average)
MAX_SEEK_TRIES = 8
REENCODE_HINT = "re-encode with ffmpeg to H.264: ffmpeg -i IN -c:v libx264 OUT.mp4"
_CODEC_NAMES = {"avc1": "h264", "h264": "h264", "x264": "h264", "hev1": "hevc", "hvc1": "hevc",
                "hevc": "hevc", "vp90": "vp9", "vp09": "vp9", "vp80": "vp8", "mjpg": "mjpeg",
                "av01": "av1", "mp4v": "mpeg4", "xvid": "mpeg4", "fmp4": "mpeg4", "theo": "theora"}


def codec_name(fourcc: int) -> str:
    """ffprobe-style codec name from an OpenCV fourcc ('h264', 'hevc', 'vp9', 'mjpeg', 'av1', ...)."""
    tag = int(fourcc).to_bytes(4, "little").decode("latin-1").strip("\x00 ").lower()
    return _CODEC_NAMES.get(tag, tag or "unknown")


def resize_frame(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [height, width, 3], bicubic with antialiasing.

    PIL's bicubic filter is the one torchvision's `antialias=True` bicubic (used by qwen-vl-utils)
    was written to match; OpenCV's INTER_CUBIC does not antialias when shrinking.
    """
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.BICUBIC))


class VideoReader:
    """One open video. Times are seconds from the video stream's start (OpenCV's POS_MSEC origin).

    Frames come out rotated as the player shows them (OpenCV applies the rotation metadata), RGB.
    """

    def __init__(self, path: str | os.PathLike, output_size: tuple[int, int] | None = None,
                 threads: int | None = None):
        """`output_size` (height, width): frames come out resized to it (bicubic, antialiased).
        `threads`: FFmpeg decoding threads (None: OpenCV's default, one per core)."""
        self.path = os.fspath(path)
        self.output_size = output_size
        self._params = [] if threads is None else [cv2.CAP_PROP_N_THREADS, int(threads)]
        problem = explain_open_failure(self.path, opened=None)
        if problem:
            raise VideoError(problem)
        self._cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG, self._params)
        if not self._cap.isOpened():
            raise VideoError(explain_open_failure(self.path, opened=False))
        self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        self.nominal_fps = float(self._cap.get(cv2.CAP_PROP_FPS))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.codec = codec_name(self._cap.get(cv2.CAP_PROP_FOURCC))
        self.rotation = int(self._cap.get(cv2.CAP_PROP_ORIENTATION_META)) % 360
        self._pts: float | None = None  # PTS of the grabbed (current) frame; None = nothing grabbed
        self._gap = 1.0 / self.nominal_fps if self.nominal_fps > 0 else 1 / 30  # last PTS step seen
        self._rgb: np.ndarray | None = None  # current frame, once retrieved
        self._returned: tuple[float, np.ndarray] | None = None
        self._fresh = True  # nothing grabbed since open: already at the first frame

    # -- lifecycle --
    def close(self):
        self._cap.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def frame_period(self) -> float:
        return 1.0 / self.nominal_fps if self.nominal_fps > 0 else self._gap

    # -- primitives --
    def _grab(self) -> bool:
        """Decode the next frame (no colour conversion) and record its real PTS."""
        self._fresh = False
        if not self._cap.grab():
            self._pts, self._rgb = None, None
            return False
        pts = self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if self._pts is not None:
            if pts <= self._pts:  # a frame without PTS: OpenCV reports 0; step by the last gap
                pts = self._pts + self._gap
            self._gap = pts - self._pts
        self._pts, self._rgb = pts, None
        return True

    def _current_rgb(self) -> np.ndarray:
        if self._rgb is None:
            ok, bgr = self._cap.retrieve()
            if not ok:
                raise VideoError(f"{self.path}: frame at {self._pts:.3f} s could not be converted")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB, dst=bgr)  # in place: one full-size buffer
            # Resized at once, so a frame kept as a candidate costs only its output size.
            self._rgb = rgb if self.output_size is None else resize_frame(rgb, *self.output_size)
        return self._rgb

    def _seek_grab(self, request_s: float) -> float | None:
        """Jump near `request_s` and grab one frame; its real PTS, or None when nothing decoded."""
        if request_s <= 0:
            if not self._fresh:
                self._rewind()
        else:
            self._cap.set(cv2.CAP_PROP_POS_MSEC, request_s * 1000.0)
        self._pts = None  # the PTS step across a seek says nothing about the frame rate
        return self._pts if self._grab() else None

    def _rewind(self):
        # set(POS_MSEC, 0) after a failed seek can leave the demuxer at EOF: reopen instead.
        self._cap.release()
        self._cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG, self._params)
        self._cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        self._fresh = True

    def _land(self, target: float):
        """Make the current frame one at or a little before `target` (bracketed seek, then fallback)."""
        period = self.frame_period
        lo: tuple[float, float] | None = None  # (request, landed pts) with pts <= target
        hi: float | None = None  # request that landed after the target or failed
        request = max(0.0, target - 0.25 * period)  # CFR: OpenCV rounds to the nearest frame
        at_lo = False  # the current frame is the `lo` landing
        for _ in range(MAX_SEEK_TRIES):
            pts = self._seek_grab(request)
            at_lo = pts is not None and pts <= target + 0.5 * period
            if at_lo:
                if (target - pts) / period <= FORWARD_LIMIT_FRAMES:
                    return
                lo, step = (request, pts), request + (target - pts)  # VFR undershoot: move on
            else:
                hi = request
                step = request - ((pts - target) if pts is not None else (request - (lo[0] if lo else 0)) / 2) - period
            if lo is not None and hi is not None and not lo[0] < step < hi:
                step = (lo[0] + hi) / 2
            step = max(0.0, step)
            if abs(step - request) < 0.5 * period:
                break
            request = step
        if at_lo:
            return  # decode forward from the best landing found
        if lo is None or self._seek_grab(lo[0]) is None:
            if self._seek_grab(0.0) is None:
                raise VideoError(f"{self.path}: no frame could be decoded ({self.codec}); {REENCODE_HINT}")

    # -- public --
    def frame_near(self, target: float, pixels: bool = True) -> tuple[float, np.ndarray | None]:
        """The frame whose PTS is nearest `target` seconds: (pts, rgb uint8 [H, W, 3]); with `pixels` False
        (pts, None), without a single colour conversion: what `probe` reports as sampled times."""
        pick = self._current_rgb if pixels else (lambda: None)
        if self._returned is not None and self._pts is not None and (self._returned[1] is not None or not pixels):
            kept = self._returned[0]  # two targets on one frame (short ranges): no second decode
            if kept <= target <= self._pts and target - kept <= self._pts - target:
                return self._returned
        ahead = None if self._pts is None else (target - self._pts) / self.frame_period
        if ahead is None or ahead < -0.5 or ahead > FORWARD_LIMIT_FRAMES:
            self._land(target)
        before: tuple[float, np.ndarray] | None = None  # retrieved frame just before the target
        while True:
            pts = self._pts
            if pts >= target - 1e-6:  # POS_MSEC is a float of a rational time
                if before is not None and target - before[0] <= pts - target:
                    self._returned = before
                else:
                    self._returned = (pts, pick())
                return self._returned
            # Only frames close before the target can be the nearest: convert just those.
            if target - pts < 1.5 * max(self._gap, self.frame_period):
                before = (pts, pick())
            last = pts
            if not self._grab():
                if before is not None:
                    self._returned = before
                    return before
                raise VideoError(f"{self.path}: the video stops at {last:.2f} s, before {target:.2f} s: "
                                 "the file is truncated or its header is wrong")

    def frames_at(self, targets, pixels: bool = True):
        """Yield (pts, rgb) for each target time, in order; targets must not decrease."""
        for target in targets:
            yield self.frame_near(float(target), pixels)

    def first_frame_pts(self) -> float:
        """PTS of the first frame; raises VideoError when the codec cannot be decoded here."""
        if self._seek_grab(0.0) is None:
            raise VideoError(f"{self.path}: cannot decode its {self.codec} video with this OpenCV build; "
                             f"{REENCODE_HINT}")
        self._returned = None
        return self._pts

    def last_frame_pts(self) -> tuple[float, float]:
        """(PTS of the last decodable frame, the step before it), decoding only the end of the file."""
        if self.frame_count > 1 and self.nominal_fps > 0:
            self._land((self.frame_count - 1) / self.nominal_fps)
        elif self._seek_grab(0.0) is None:
            raise VideoError(f"{self.path}: no frame could be decoded ({self.codec}); {REENCODE_HINT}")
        last = self._pts
        while self._grab():
            last = self._pts
        self._returned = None
        return last, self._gap

    def count_frames(self) -> tuple[int, float]:
        """Decode the whole file once: (frames, end time in s). Only for files without a frame count."""
        count, end = 1, self.first_frame_pts() + self.frame_period
        while self._grab():
            count, end = count + 1, self._pts + self._gap
        return count, end
