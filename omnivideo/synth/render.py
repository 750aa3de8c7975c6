"""Frames of a synthetic video: background, the visible object, and the burned-in mm:ss clock.

The clock is a CCTV-style seven-segment `mm:ss` in the top-left corner, drawn on a black box in a
band no object enters. It is there because a ~7M-parameter model cannot recover absolute time from
the video tokens' rotary positions, but it can learn to read large digits: "When does the star first
appear?" becomes "find the first frame with a star and read its clock". The geometry is aligned to
the vision grid: at 448 px each character (digits and colon) fills a 56x56 cell (2x2 merged tokens of
28 px, never across a 112-px attention window); at 224 px (reduced-scale training) one merged token.

    frame = render_frame(spec, 12.5)     # uint8 [spec.size, spec.size, 3] RGB
"""
from functools import lru_cache

import cv2
import numpy as np

from omnivideo.synth.scene import VideoSpec
from omnivideo.synth.vocab import COLOURS

CELL = 56                     # character cell at 448 px: digits and the colon alike, so every cell is
                              # 2x2 merged tokens at 448 px and one at 224 px, and none straddles a window
CLOCK_RGB = (240, 240, 240)
SUBPIXEL = 4                  # cv2 fixed-point bits for polygon vertices (smooth edges at any size)
# Seven segments per digit: a top, b top-right, c bottom-right, d bottom, e bottom-left, f top-left, g middle.
SEGMENTS = {"0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd", "6": "afgedc",
            "7": "abc", "8": "abcdefg", "9": "abcdfg"}


@lru_cache(maxsize=64)
def _background(size: int, rgb: tuple[int, int, int], gradient: int) -> np.ndarray:
    """[size, size, 3] uint8: the plain colour with a gentle vertical gradient (read-only, shared)."""
    ramp = np.linspace(-gradient, gradient, size, dtype=np.float32)[:, None, None]
    img = np.clip(np.asarray(rgb, np.float32)[None, None, :] + ramp, 0, 255).astype(np.uint8)
    img = np.ascontiguousarray(np.broadcast_to(img, (size, size, 3)))
    img.flags.writeable = False
    return img


def _poly(img: np.ndarray, points: np.ndarray, rgb) -> None:
    pts = np.round(points * (1 << SUBPIXEL)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(img, [pts], rgb, lineType=cv2.LINE_AA, shift=SUBPIXEL)


def _star(cx: float, cy: float, r: float, points: int = 5, inner: float = 0.42) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, r, r * inner)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def draw_shape(img: np.ndarray, shape: str, cx: float, cy: float, r: float, rgb) -> None:
    """Draw one filled shape of circumradius ~r (pixels) centred at (cx, cy), in place."""
    if shape == "circle":
        cv2.circle(img, (round(cx * 16), round(cy * 16)), round(r * 16), rgb, -1, cv2.LINE_AA, 4)
    elif shape == "ring":
        cv2.circle(img, (round(cx * 16), round(cy * 16)), round(r * 0.8 * 16), rgb, max(2, round(r * 0.4)),
                   cv2.LINE_AA, 4)
    elif shape == "square":
        h = r * 0.8
        _poly(img, np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]]), rgb)
    elif shape == "triangle":
        a, rt = np.deg2rad([-90, 30, 150]), r * 1.1   # a triangle fills less of its circle: a bit larger
        _poly(img, np.stack([cx + rt * np.cos(a), cy + rt * 0.2 + rt * np.sin(a)], axis=1), rgb)
    elif shape == "star":
        _poly(img, _star(cx, cy, r), rgb)
    elif shape == "cross":
        w, L = r * 0.3, r
        _poly(img, np.array([[cx - w, cy - L], [cx + w, cy - L], [cx + w, cy - w], [cx + L, cy - w],
                             [cx + L, cy + w], [cx + w, cy + w], [cx + w, cy + L], [cx - w, cy + L],
                             [cx - w, cy + w], [cx - L, cy + w], [cx - L, cy - w], [cx - w, cy - w]]), rgb)
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _segment_boxes(x: float, y: float, unit: float) -> dict[str, tuple[float, float, float, float]]:
    """Segment rectangles (x0, y0, x1, y1) of a digit whose 56-unit cell starts at (x, y)."""
    w, h, th = 34 * unit, 46 * unit, 8 * unit
    left, top = x + (CELL * unit - w) / 2, y + (CELL * unit - h) / 2
    right, bottom, mid = left + w, top + h, top + h / 2
    return {"a": (left, top, right, top + th), "d": (left, bottom - th, right, bottom),
            "g": (left, mid - th / 2, right, mid + th / 2),
            "f": (left, top, left + th, mid), "b": (right - th, top, right, mid),
            "e": (left, mid, left + th, bottom), "c": (right - th, mid, right, bottom)}


def _fill(img: np.ndarray, box, rgb) -> None:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    img[y0:y1, x0:x1] = rgb


def clock_box(size: int) -> tuple[int, int]:
    """(width, height) in pixels of the clock's black box at frame side `size`."""
    unit = size / 448
    return int(round(5 * CELL * unit)), int(round(CELL * unit))


def draw_clock(img: np.ndarray, seconds: int) -> None:
    """Burn `seconds` as mm:ss (seven-segment, top-left) into img [S, S, 3], in place."""
    size = img.shape[0]
    unit = size / 448
    width, height = clock_box(size)
    img[:height, :width] = 0
    text = f"{seconds // 60 % 100:02d}{seconds % 60:02d}"
    xs = [0, CELL, 3 * CELL, 4 * CELL]
    for ch, x in zip(text, xs):
        boxes = _segment_boxes(x * unit, 0, unit)
        for seg in SEGMENTS[ch]:
            _fill(img, boxes[seg], CLOCK_RGB)
    dot, cx = 8 * unit, 2.5 * CELL * unit
    for cy in (18 * unit, 38 * unit):
        _fill(img, (cx - dot / 2, cy - dot / 2, cx + dot / 2, cy + dot / 2), CLOCK_RGB)


def render_frame(spec: VideoSpec, t_seconds: float) -> np.ndarray:
    """The frame at `t_seconds`: uint8 [spec.size, spec.size, 3] RGB. Pure function of (spec, t)."""
    img = _background(spec.size, spec.background, spec.gradient).copy()
    for event in spec.events_at(t_seconds):
        x, y = event.centre(t_seconds)
        draw_shape(img, event.shape, x * spec.size, y * spec.size, event.size * spec.size / 2,
                   COLOURS[event.colour])
    draw_clock(img, spec.clock_s(t_seconds))
    return img


def render_frames(spec: VideoSpec, times_s) -> np.ndarray:
    """uint8 [T, S, S, 3] RGB frames at each time in `times_s`."""
    out = np.empty((len(times_s), spec.size, spec.size, 3), np.uint8)
    for i, t in enumerate(times_s):
        out[i] = render_frame(spec, float(t))
    return out
