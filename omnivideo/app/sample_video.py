"""A small generated video for the demo and for first runs: a ball crossing a scene, with its time.

OpenCV writes it (mp4v), so it needs nothing beyond the Python dependencies.

    path = make_sample_video(data_dir / "samples" / "demo.mp4")
"""
from pathlib import Path

import cv2
import numpy as np


def _frame(i: int, fps: float, width: int, height: int) -> np.ndarray:
    t = i / fps
    img = np.zeros((height, width, 3), np.uint8)
    img[:] = (40 + int(20 * np.sin(t)), 90, 40)                       # a green field
    x = int((0.1 + 0.8 * ((t / 8.0) % 1.0)) * width)
    y = int(height * (0.55 + 0.25 * abs(np.sin(2 * t))))
    cv2.circle(img, (x, y), max(6, height // 16), (255, 255, 255), -1)  # the ball
    cv2.rectangle(img, (width - 40, height // 3), (width - 10, 2 * height // 3), (200, 200, 200), 3)  # a goal
    cv2.putText(img, f"t={t:05.2f}s", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return img


def make_sample_video(path: Path, seconds: float = 8.0, fps: float = 10.0, size: tuple[int, int] = (320, 240)) -> Path:
    """Write the sample video to `path` (atomically) unless it already exists; return the path."""
    path = Path(path)
    if path.exists() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    width, height = size
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open a video writer for {tmp}")
    try:
        for i in range(int(round(seconds * fps))):
            writer.write(_frame(i, fps, width, height))
    finally:
        writer.release()
    tmp.replace(path)
    return path
