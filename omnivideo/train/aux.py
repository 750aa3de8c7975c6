"""Dense auxiliary supervision for stage A: what each visual token (and its frame) shows, from the tower.

Answers give the tower a handful of gradients per video, routed through an untrained LLM's attention:
on CPU the tower learned no colour in ~1000 steps (docs/training.md). The renderer knows what every merged
token (28x28 px of a frame pair) shows, so linear heads on the merger output learn to predict, per
token: (cell) the colour and shape of the object covering it and the clock digit in it, and (frame)
the colour and shape of the frame's object and the four clock digits, whatever the token's position.
The frame targets are the important ones: they make the tower (its full-attention blocks) broadcast
"what and when" into all of a frame's tokens, so the LLM's attention finds them in tens, not
thousands, of tokens; with such features an LLM learned the needle in ~1K CPU steps, without them
not in 2K (docs/training.md, oracle experiments). The heads are training-only (state.pt, never the exported
checkpoint): the model stays a stock Qwen2.5-VL.

    labels = token_labels(spec, plan_timestamps, frame_size)      # int64 [N, 9]
    head = AuxHeads(hidden=256); loss = head.loss(video_embeds, labels)
"""
import numpy as np
import torch
import torch.nn.functional as F

from omnivideo.synth.render import CELL
from omnivideo.synth.scene import VideoSpec
from omnivideo.synth.vocab import COLOUR_NAMES, SHAPES

TOKEN_PX = 28                 # one merged token = 2x2 patches of 14 px
MIN_COVER = 0.2               # a token shows the object when it covers this share of the token's area
NONE = 0                      # class 0 of every head: nothing (background / not a clock digit)


def _object_cover(spec: VideoSpec, t: float, grid: int) -> tuple[np.ndarray, object]:
    """(share of each token cell covered by the object at time t [grid, grid], the event or None)."""
    from omnivideo.synth.render import draw_shape

    shown = spec.events_at(t)
    if not shown:
        return np.zeros((grid, grid), np.float32), None
    event = shown[0]
    mask = np.zeros((spec.size, spec.size), np.uint8)
    x, y = event.centre(t)
    draw_shape(mask, event.shape, x * spec.size, y * spec.size, event.size * spec.size / 2, 255)
    cover = mask.reshape(grid, TOKEN_PX, grid, TOKEN_PX).mean(axis=(1, 3)) / 255.0
    return cover, event


def _clock_digits(spec: VideoSpec, t: float, grid: int) -> np.ndarray:
    """Digit class (1 + digit) of each token cell in the clock band, 0 elsewhere [grid, grid]."""
    out = np.zeros((grid, grid), np.int64)
    seconds = spec.clock_s(t)
    text = f"{seconds // 60 % 100:02d}{seconds % 60:02d}"
    cell = CELL * spec.size / 448 / TOKEN_PX          # token cells per character cell (2 at 448, 1 at 224)
    rows = max(1, round(cell))
    for ch, x in zip(text, (0, 1, 3, 4)):
        c0, c1 = round(x * cell), round((x + 1) * cell)
        out[:rows, c0:max(c0 + 1, c1)] = 1 + int(ch)
    return out


def token_labels(spec: VideoSpec, timestamps_s, frame_size: int) -> torch.Tensor:
    """int64 [num_visual_tokens, 9] in the merger's order (pair, row, column), each pair labelled by its
    first frame: cell colour, cell shape, cell digit, frame colour, frame shape, frame clock m1 m2 s1 s2.
    Colour/shape: 0 none, 1..6; cell digit: 0 none, 1..10; clock digits 0..9 (as shown)."""
    assert frame_size == spec.size and frame_size % TOKEN_PX == 0
    grid = frame_size // TOKEN_PX
    rows = []
    for t in list(timestamps_s)[::2]:
        cover, event = _object_cover(spec, float(t), grid)
        colour = np.zeros((grid, grid), np.int64)
        shape = np.zeros((grid, grid), np.int64)
        frame = np.zeros(6, np.int64)
        if event is not None:
            on = cover >= MIN_COVER
            colour[on] = 1 + COLOUR_NAMES.index(event.colour)
            shape[on] = 1 + SHAPES.index(event.shape)
            frame[:2] = 1 + COLOUR_NAMES.index(event.colour), 1 + SHAPES.index(event.shape)
        seconds = spec.clock_s(float(t))
        frame[2:] = [seconds // 600 % 10, seconds // 60 % 10, seconds % 60 // 10, seconds % 10]
        digit = _clock_digits(spec, float(t), grid)
        cells = np.stack([colour, shape, digit], axis=-1).reshape(-1, 3)
        rows.append(np.concatenate([cells, np.broadcast_to(frame, (cells.shape[0], 6))], axis=1))
    return torch.from_numpy(np.concatenate(rows, axis=0))


CLASSES = (1 + len(COLOUR_NAMES), 1 + len(SHAPES), 11, 1 + len(COLOUR_NAMES), 1 + len(SHAPES), 10, 10, 10, 10)


class AuxHeads(torch.nn.Module):
    """One linear head per label column of `token_labels` on merged visual tokens [N, hidden]."""

    def __init__(self, hidden: int):
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(hidden, n) for n in CLASSES)

    def loss(self, embeds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean of the per-head token-level cross-entropies. embeds [N, hidden]; labels int64 [N, 9]."""
        x = embeds.float()
        labels = labels.to(x.device)
        return sum(F.cross_entropy(h(x), labels[:, i]) for i, h in enumerate(self.heads)) / len(self.heads)
