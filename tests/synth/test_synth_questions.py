"""Every question's answer is what the frames the app would sample show (pixels, not the spec's word)."""
import numpy as np
import pytest

from omnivideo.app.video.sampling import SamplingConfig, plan_sampling
from omnivideo.synth.questions import GROUNDING_TOLERANCE_S, make_questions
from omnivideo.synth.render import CELL, SEGMENTS, _segment_boxes, render_frame
from omnivideo.synth.scene import make_spec
from omnivideo.synth.score import score
from omnivideo.synth.vocab import COLOURS, KINDS
from omnivideo.train.sample import video_info


def read_clock(frame: np.ndarray) -> int:
    """Seven-segment OCR of the burned-in mm:ss: which segment centres are lit, per character cell."""
    unit = frame.shape[0] / 448
    digits = []
    for x in (0, CELL, 3 * CELL, 4 * CELL):
        lit = set()
        for seg, (x0, y0, x1, y1) in _segment_boxes(x * unit, 0, unit).items():
            if frame[int((y0 + y1) / 2), int((x0 + x1) / 2)].mean() > 128:
                lit.add(seg)
        matches = [d for d, segs in SEGMENTS.items() if set(segs) == lit]
        assert len(matches) == 1, f"unreadable digit, segments {sorted(lit)}"
        digits.append(int(matches[0]))
    return (digits[0] * 10 + digits[1]) * 60 + digits[2] * 10 + digits[3]


def object_colour(frame: np.ndarray) -> str | None:
    """The object colour shown below the clock band (None: only background)."""
    body = frame[int(frame.shape[0] * 56 / 448) + 2::3, ::3].reshape(-1, 3).astype(np.int32)  # every 3rd pixel: fast
    best, best_n = None, 0
    for name, rgb in COLOURS.items():
        n = int((np.abs(body - np.asarray(rgb)).max(axis=1) < 30).sum())
        if n > best_n:
            best, best_n = name, n
    return best if best_n > 6 else None


def sampled(spec):
    plan = plan_sampling(video_info(spec), SamplingConfig())
    return [(t, render_frame(spec, t)) for t in plan.timestamps_s]


def shape_at(spec, t):
    shown = spec.events_at(t)
    return shown[0].shape if shown else None


@pytest.mark.parametrize("duration,seeds", [(14, 3), (75, 3), (600, 2), (1200, 1)], ids=lambda d: f"{d}")
def test_answers_are_what_the_sampled_frames_show(duration, seeds):
    for seed in range(seeds):
        spec = make_spec(seed, duration)
        frames = sampled(spec)
        seen = [(t, object_colour(f), shape_at(spec, t), f) for t, f in frames]
        for t, colour, shape, _ in seen:
            assert (colour is None) == (shape is None), f"pixels and scene disagree at {t:.2f} s"
        for q in make_questions(spec):
            if q.kind == "needle":
                shape = q.text.split()[-1].rstrip("?")
                assert {c for _, c, s, _ in seen if s == shape} == {q.truth}
            elif q.kind == "count":
                words = q.text.split()
                colour, shape = words[5], words[6]
                runs = sum(1 for i, (_, c, s, _) in enumerate(seen) if (c, s) == (colour, shape)
                           and (i == 0 or seen[i - 1][1:3] != (colour, shape)))
                assert runs == q.truth
            elif q.kind == "order":
                firsts = {s: min(t for t, _, sh, _ in seen if sh == s) for s in q.choices}
                assert min(firsts, key=firsts.get) == q.truth
            elif q.kind == "grounding":
                shape = q.text.split()[3]
                first = next(f for t, _, s, f in seen if s == shape)
                assert abs(read_clock(first) - q.truth) <= GROUNDING_TOLERANCE_S
            assert score(q, q.answer)


def test_every_kind_is_asked_from_fifteen_seconds_on():
    for seed in range(20):
        kinds = {q.kind for q in make_questions(make_spec(seed, 60))}
        assert kinds == set(KINDS)


def test_clock_shows_the_time_and_the_offset():
    spec = make_spec(5, 90, clock_offset_s=754)
    for t in (0.0, 0.99, 1.0, 61.5, 89.9):
        assert read_clock(render_frame(spec, t)) == int(t) + 754
    small = make_spec(5, 90, size=224)
    assert read_clock(render_frame(small, 37.2)) == 37


def test_grounding_answer_is_the_clock_of_the_first_frame_showing_it():
    spec = make_spec(8, 200)
    for q in make_questions(spec):
        if q.kind == "grounding":
            assert object_colour(render_frame(spec, q.truth)) is not None
            assert object_colour(render_frame(spec, q.truth - 0.5)) is None
            assert q.answer == f"[{q.truth // 60:02d}:{q.truth % 60:02d}]"
