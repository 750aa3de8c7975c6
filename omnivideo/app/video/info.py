"""What a video file is: duration, frame rate, frame count, displayed size, codec, rotation.

`probe_video` opens the file with OpenCV, decodes its first frame (so an undecodable codec is
refused here, with a re-encode hint) and the frames of its last second (so a truncated file is
refused here, and a duration the header got wrong is replaced by the real one). It decodes at most
one keyframe interval at each end, whatever the length of the video.

    info = probe_video("lecture.mp4")   # VideoInfo(duration_s=3600.0, fps=30.0, frame_count=108000, ...)
"""
import math
import os
from dataclasses import dataclass

from omnivideo.errors import VideoError
from omnivideo.app.video.container import container_kind
from omnivideo.app.video.reader import VideoReader

_MAX_SANE_FPS = 1000.0  # above this CAP_PROP_FPS is a container time base, not a frame rate
_HEADER_SLACK = 0.02  # the header's duration may differ from the decoded end by 2% (+2 frames)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A probed video. `width` x `height` is the displayed size, after `rotation` is applied.

    `rotation`: clockwise degrees the player turns the stored frames (ffprobe's display-matrix
    `rotation` counts counter-clockwise: 360 minus it); frames already come out turned.

    `fps` is the average frame rate (frame_count / duration on variable-frame-rate files), the figure
    qwen-vl-utils samples with; the reader itself never trusts it for timing.
    """
    path: str
    duration_s: float
    fps: float
    frame_count: int
    width: int
    height: int
    codec: str
    rotation: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "duration_s": round(self.duration_s, 3), "fps": round(self.fps, 3),
                "frame_count": self.frame_count, "width": self.width, "height": self.height,
                "codec": self.codec, "rotation": self.rotation}


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Probe `path`; raises VideoError with one clear line when it cannot be sampled."""
    path = os.fspath(path)
    with VideoReader(path) as reader:
        if reader.width <= 0 or reader.height <= 0:
            raise VideoError(f"{path}: the video stream has no frame size")
        reader.first_frame_pts()
        fps, count = reader.nominal_fps, reader.frame_count
        if not (0 < fps < _MAX_SANE_FPS and count > 0):
            count, end = reader.count_frames()
            fps = count / end
        else:
            last, gap = reader.last_frame_pts()
            end = last + gap
        info = dict(path=path, width=reader.width, height=reader.height, codec=reader.codec,
                    rotation=reader.rotation)
    header = count / fps
    if abs(end - header) > _HEADER_SLACK * header + 2 / fps:
        if end < header and container_kind(path) in ("mp4", "avi"):
            # These containers index every frame: frames missing at the end were cut off.
            raise VideoError(f"{path}: the file is truncated: its video stops at {end:.2f} s but its index "
                             f"says {header:.2f} s (incomplete download or copy?)")
        # Matroska/WebM and others estimate the count from a duration that can include a longer
        # audio track: the decoded end is the truth.
        count, header = max(1, math.floor(end * fps + 0.5)), end
    return VideoInfo(duration_s=header, fps=fps, frame_count=count, **info)
