"""Mild, codec-like corruption of rendered frames, so a model trained on clean renders reads decoded files.

Decoded H.264 (crf 18) differs from the render by ~1.6 grey levels on average, with a level offset
(full -> limited range) and ringing at sharp edges; OpenCV's mp4v is worse (~2.2, blockier). The
augmentation covers that range: a brightness offset, a slight blur, JPEG blocking and noise, each
drawn per video (every frame of a video gets the same treatment, as a codec would).

    frames = augment_frames(frames, np.random.default_rng(seed))   # uint8 [T, H, W, 3] -> same
"""
import cv2
import numpy as np


def augment_frames(frames: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """uint8 [T, H, W, 3] RGB -> uint8 [T, H, W, 3]; `strength` 0 returns the frames unchanged."""
    if strength <= 0:
        return frames
    offset = rng.uniform(-4, 4) * strength
    sigma = rng.uniform(0.0, 0.9) * strength if rng.random() < 0.6 else 0.0
    quality = int(rng.uniform(45, 95)) if rng.random() < 0.4 * strength else None
    noise = rng.uniform(0, 3) * strength
    # one noise field per video (drawing one per frame costs more than the render itself at 448 px)
    field = rng.normal(0, noise, size=frames.shape[1:]).astype(np.float32) + offset if noise > 0 else offset
    out = np.empty_like(frames)
    for i, frame in enumerate(frames):
        f = frame
        if sigma > 0.2:
            f = cv2.GaussianBlur(f, (0, 0), sigma)
        if quality is not None:
            ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, quality])
            f = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if ok else f   # RGB stays RGB: both ends agree
        out[i] = np.clip(f.astype(np.float32) + field, 0, 255).astype(np.uint8)
    return out
