"""The scene of a synthetic video: a timeline of single-object events on a plain background, from a seed.

A `VideoSpec` is everything needed to render any frame at any time (`render.render_frame`) and to
derive questions with exactly one answer (`questions.make_questions`). It is built constructively so
that every video, short or long, can be asked every question kind:

- two "unique" shapes (u1, u2) appear exactly once each: needle ("What colour is the star?") and order;
- one (colour, shape) pair appears exactly k times (1..4), and nothing else has that pair: count;
- fillers use the remaining shapes (never u1 / u2), so the unique shapes stay unique;
- all start/end times are whole seconds; events last 3-6 s and gaps are at least `min_gap_s` (2 s, more
  for videos over ~8 min), both longer than the app's frame spacing at its 768-frame cap (up to ~40 min)
  and than 1-fps sampling, so sampling sees every event and every gap between two events of the same pair.

    spec = make_spec(seed=7, duration_s=600)
    spec.events[0]   # Event(shape='star', colour='red', start_s=4, end_s=8, ...)
"""
import math
from dataclasses import dataclass

import numpy as np

from omnivideo.errors import ConfigError
from omnivideo.synth.vocab import COLOUR_NAMES, SHAPES

MIN_DURATION_S = 7                # one 3-s event and two 2-s gaps
MAX_CLOCK_S = 59 * 60 + 59       # the clock shows mm:ss: the whole video (and offset) stays below an hour
MAX_EVENTS = 48
EVENT_MIN_S, EVENT_MAX_S = 3, 6
MAX_COUNT = 4
CLOCK_BAND = 56 / 448            # top band (fraction of the height) that holds the clock; objects stay below it
SIZE_RANGE = (80 / 448, 140 / 448)  # object diameter as a fraction of the frame side


@dataclass(frozen=True, slots=True)
class Event:
    """One object shown from `start_s` (inclusive) to `end_s` (exclusive), moving linearly from
    (x0, y0) to (x1, y1) (centre, fractions of the frame side); `size` is its diameter, same units."""
    shape: str
    colour: str
    start_s: int
    end_s: int
    x0: float
    y0: float
    x1: float
    y1: float
    size: float

    def visible(self, t: float) -> bool:
        return self.start_s <= t < self.end_s

    def centre(self, t: float) -> tuple[float, float]:
        a = min(1.0, max(0.0, (t - self.start_s) / (self.end_s - self.start_s)))
        return self.x0 + a * (self.x1 - self.x0), self.y0 + a * (self.y1 - self.y0)


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """A whole synthetic video. `size`: square frame side in pixels. `clock_offset_s`: the clock shows
    floor(t) + offset (0 for every video a user gets; training uses offsets so that every digit position
    of the clock is seen in short clips). `unique`: the two shapes that appear once (or one, or none);
    `count_pair`: (colour, shape, k) planted exactly k times."""
    seed: int
    duration_s: int
    size: int
    background: tuple[int, int, int]
    gradient: int
    events: tuple[Event, ...]
    unique: tuple[str, ...]
    count_pair: tuple[str, str, int] | None
    clock_offset_s: int = 0

    def __post_init__(self):
        if self.duration_s + self.clock_offset_s > MAX_CLOCK_S + 1:
            raise ConfigError(f"the mm:ss clock cannot show {self.duration_s + self.clock_offset_s} s")

    def clock_s(self, t: float) -> int:
        """What the burned-in clock shows at time t (whole seconds)."""
        return int(math.floor(t + 1e-9)) + self.clock_offset_s

    def events_at(self, t: float) -> list[Event]:
        return [e for e in self.events if e.visible(t)]


def check_duration(duration_s: float, clock_offset_s: int = 0) -> int:
    """Whole seconds, validated (a ConfigError names the limits)."""
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s)):
        raise ConfigError(f"duration must be a number of seconds, got {duration_s!r}")
    d = int(round(duration_s))
    if not MIN_DURATION_S <= d <= MAX_CLOCK_S + 1 - clock_offset_s:
        raise ConfigError(f"duration must be {MIN_DURATION_S} s to {(MAX_CLOCK_S + 1 - clock_offset_s) / 60:.0f} min "
                          f"(the clock shows mm:ss), got {duration_s} s")
    return d


def min_gap_s(duration_s: int) -> int:
    """Shortest gap between events: longer than the app's frame spacing (768 frames at most) and than
    the 1-1.8 s spacing of reduced-frame training clips."""
    return max(2, math.ceil(duration_s / 256))


def _event_count(rng: np.random.Generator, duration_s: int, gap: int) -> int:
    capacity = (duration_s - gap) // (EVENT_MIN_S + gap)
    hi = max(1, min(capacity, 2 + duration_s // 12, MAX_EVENTS))
    lo = max(1, min(hi, duration_s // 30))
    return int(rng.integers(lo, hi + 1))


def _assign_shapes(rng: np.random.Generator, n: int) -> tuple[list[tuple[str, str]], tuple, tuple | None]:
    """(colour, shape) per event (unordered), the unique shapes, and the planted count pair."""
    shapes = [SHAPES[i] for i in rng.permutation(len(SHAPES))]
    unique, fillers = shapes[:min(2, n)], shapes[2:]
    pairs = [(COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], s) for s in unique]
    count_pair = None
    rest = n - len(unique)
    if rest > 0:
        k = int(rng.integers(1, min(MAX_COUNT, rest) + 1))
        target = (COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))], fillers[rng.integers(len(fillers))])
        count_pair = (target[0], target[1], k)
        others = [(c, s) for c in COLOUR_NAMES for s in fillers if (c, s) != target]
        pool = [others[i] for i in rng.permutation(len(others))[:max(1, math.ceil((rest - k) / 1.5))]]
        pairs += [target] * k + [pool[rng.integers(len(pool))] for _ in range(rest - k)]
    return pairs, tuple(unique), count_pair


def _timeline(rng: np.random.Generator, n: int, duration_s: int, gap: int) -> list[tuple[int, int]]:
    """n (start, end) whole-second intervals, in order, with gaps >= `gap` before, between and after."""
    lengths = rng.integers(EVENT_MIN_S, EVENT_MAX_S + 1, size=n)
    while lengths.sum() + (n + 1) * gap > duration_s:  # shorten the longest until they fit
        lengths[np.argmax(lengths)] -= 1
    spare = duration_s - int(lengths.sum()) - (n + 1) * gap
    extra = rng.multinomial(spare, np.ones(n + 1) / (n + 1))
    out, t = [], 0
    for i in range(n):
        t += gap + int(extra[i])
        out.append((t, t + int(lengths[i])))
        t += int(lengths[i])
    return out


def _place(rng: np.random.Generator, size: float) -> tuple[float, float, float, float]:
    r = size / 2 + 0.02
    def point():
        return float(rng.uniform(r, 1 - r)), float(rng.uniform(CLOCK_BAND + r, 1 - r))
    x0, y0 = point()
    if rng.random() < 0.5:
        return x0, y0, x0, y0
    x1, y1 = point()
    dist = math.hypot(x1 - x0, y1 - y0)
    if dist > 0.3:   # keep motion gentle: at most 30% of the frame over the event
        x1, y1 = x0 + (x1 - x0) * 0.3 / dist, y0 + (y1 - y0) * 0.3 / dist
    return x0, y0, x1, y1


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    """A dark, desaturated colour: value 25-80, saturation <= 0.35 (never mistaken for an object colour)."""
    v = rng.uniform(25, 80)
    s = rng.uniform(0.0, 0.35)
    hue = rng.uniform(0, 2 * math.pi)
    rgb = [v * (1 - s + s * (0.5 + 0.5 * math.cos(hue - k * 2 * math.pi / 3))) for k in range(3)]
    return tuple(int(round(c)) for c in rgb)


def make_spec(seed: int, duration_s: float, size: int = 448, clock_offset_s: int = 0) -> VideoSpec:
    """The video of `seed` (deterministic: same seed and arguments, same spec, on every machine)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(size, int) or size < 112 or size % 28:
        raise ConfigError(f"frame size must be a multiple of 28 and >= 112, got {size!r}")
    if not isinstance(clock_offset_s, int) or clock_offset_s < 0:
        raise ConfigError(f"clock offset must be an integer >= 0, got {clock_offset_s!r}")
    duration = check_duration(duration_s, clock_offset_s)
    rng = np.random.default_rng([int(seed), duration])
    gap = min_gap_s(duration)
    n = _event_count(rng, duration, gap)
    pairs, unique, count_pair = _assign_shapes(rng, n)
    pairs = [pairs[i] for i in rng.permutation(n)]
    events = []
    for (colour, shape), (start, end) in zip(pairs, _timeline(rng, n, duration, gap)):
        size_frac = float(rng.uniform(*SIZE_RANGE))
        events.append(Event(shape, colour, start, end, *_place(rng, size_frac), size=size_frac))
    return VideoSpec(seed=int(seed), duration_s=duration, size=size, background=_background(rng),
                     gradient=int(rng.integers(0, 16)), events=tuple(events), unique=unique,
                     count_pair=count_pair, clock_offset_s=clock_offset_s)
