"""Scenes are deterministic, and every video keeps the promises its questions rely on."""
import collections

import numpy as np
import pytest

from omnivideo.errors import ConfigError
from omnivideo.synth.render import render_frame
from omnivideo.synth.scene import EVENT_MAX_S, EVENT_MIN_S, MAX_COUNT, make_spec, min_gap_s

LENGTHS = [7, 9, 14, 30, 75, 300, 1200, 3599]


def test_same_seed_same_video_and_frames():
    a, b = make_spec(11, 90), make_spec(11, 90)
    assert a == b
    for t in (0.0, 7.3, 45.0, 89.9):
        assert np.array_equal(render_frame(a, t), render_frame(b, t))
    assert make_spec(12, 90) != a


@pytest.mark.parametrize("duration", LENGTHS, ids=[f"{d}s" for d in LENGTHS])
def test_timeline_and_shapes_keep_the_question_guarantees(duration):
    for seed in range(25):
        spec = make_spec(seed, duration)
        events = spec.events
        assert events, "every video has at least one event"
        gap = min_gap_s(duration)
        assert events[0].start_s >= gap and events[-1].end_s <= duration - gap
        for e in events:
            assert EVENT_MIN_S <= e.end_s - e.start_s <= EVENT_MAX_S
        for prev, nxt in zip(events, events[1:]):
            assert nxt.start_s - prev.end_s >= gap
        shapes = collections.Counter(e.shape for e in events)
        for s in spec.unique:
            assert shapes[s] == 1, f"unique shape {s} appears {shapes[s]} times"
        if spec.count_pair:
            colour, shape, k = spec.count_pair
            assert 1 <= k <= MAX_COUNT
            assert sum(e.colour == colour and e.shape == shape for e in events) == k
        if len(events) >= 2:
            assert len(spec.unique) == 2


def test_objects_stay_inside_the_frame_and_below_the_clock():
    for seed in range(40):
        spec = make_spec(seed, 120)
        for e in spec.events:
            for t in (e.start_s, (e.start_s + e.end_s) / 2, e.end_s - 1e-3):
                x, y = e.centre(t)
                r = e.size / 2
                assert r <= x <= 1 - r and 56 / 448 + r <= y <= 1 - r


def test_same_seed_different_size_is_the_same_scene_scaled():
    big, small = make_spec(3, 60, size=448), make_spec(3, 60, size=224)
    assert big.events == small.events
    a = render_frame(big, big.events[0].start_s + 1.0).astype(np.float32)
    b = render_frame(small, small.events[0].start_s + 1.0).astype(np.float32)
    down = a.reshape(224, 2, 224, 2, 3).mean(axis=(1, 3))
    assert np.abs(down - b).mean() < 6


@pytest.mark.parametrize("bad", [dict(seed=-1, duration_s=60), dict(seed=1, duration_s=6),
                                 dict(seed=1, duration_s=3601), dict(seed=1, duration_s=float("nan")),
                                 dict(seed=1, duration_s=60, size=100), dict(seed=1, duration_s=3500, clock_offset_s=200)])
def test_bad_arguments_are_config_errors(bad):
    with pytest.raises(ConfigError):
        make_spec(**bad)
