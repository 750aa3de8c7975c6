"""Questions about a synthetic video, each with exactly one checkable answer.

Kinds (see scene.py for why each is answerable in every video):
- needle: "What colour is the star?" where the star appears once -> "red"
- count: "How many times does a red square appear?" -> "2" (1..4)
- order: "Which appears first, the star or the ring?" (each appears once) -> "star"
- grounding: "When does the star first appear?" -> "[mm:ss]", the clock reading of the first frame
  showing it (its start: whole seconds), scored within +-2 s.

    for q in make_questions(spec):
        print(q.kind, q.text, q.answer)
"""
from dataclasses import dataclass

import numpy as np

from omnivideo.synth.scene import VideoSpec
from omnivideo.synth.vocab import QUESTION_TEMPLATES

GROUNDING_TOLERANCE_S = 2


def format_clock(seconds: int) -> str:
    """12 -> '[00:12]'; 754 -> '[12:34]' (the app's [mm:ss] citation form)."""
    return f"[{seconds // 60:02d}:{seconds % 60:02d}]"


@dataclass(frozen=True, slots=True)
class Question:
    """`answer` is the canonical reply (what training teaches); `truth` the value scoring compares:
    a colour or shape name (needle, order), an int count, or the clock time in whole seconds (grounding).
    `choices`: the two shapes of an order question."""
    kind: str
    text: str
    answer: str
    truth: str | int
    choices: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "question": self.text, "answer": self.answer}
        if self.choices:
            out["choices"] = list(self.choices)
        return out


def _first(spec: VideoSpec, shape: str | None, colour: str | None = None):
    return min((e for e in spec.events if (shape is None or e.shape == shape) and (colour is None or e.colour == colour)),
               key=lambda e: e.start_s)


def _needle(spec: VideoSpec, shape: str) -> Question:
    colour = _first(spec, shape).colour
    return Question("needle", QUESTION_TEMPLATES["needle"].format(shape=shape), colour, colour)


def _count(spec: VideoSpec, colour: str, shape: str) -> Question:
    k = sum(1 for e in spec.events if e.colour == colour and e.shape == shape)
    return Question("count", QUESTION_TEMPLATES["count"].format(colour=colour, shape=shape), str(k), k)


def _order(spec: VideoSpec, a: str, b: str) -> Question:
    winner = a if _first(spec, a).start_s < _first(spec, b).start_s else b
    return Question("order", QUESTION_TEMPLATES["order"].format(first=a, second=b), winner, winner, (a, b))


def _grounding(spec: VideoSpec, shape: str) -> Question:
    seconds = spec.clock_s(_first(spec, shape).start_s)
    return Question("grounding", QUESTION_TEMPLATES["grounding"].format(shape=shape), format_clock(seconds),
                    seconds)


def make_questions(spec: VideoSpec) -> list[Question]:
    """The video's questions, in a fixed order: needle(s), count, order, grounding(s).

    Deterministic from the spec: the order question names its two shapes in a seed-dependent order
    (so "the first-named one" is no shortcut).
    """
    rng = np.random.default_rng([spec.seed, spec.duration_s, 1])
    out = [_needle(spec, s) for s in spec.unique]
    if spec.count_pair is not None:
        out.append(_count(spec, spec.count_pair[0], spec.count_pair[1]))
    elif spec.unique:
        out.append(_count(spec, _first(spec, spec.unique[0]).colour, spec.unique[0]))
    if len(spec.unique) == 2:
        a, b = spec.unique if rng.random() < 0.5 else spec.unique[::-1]
        out.append(_order(spec, a, b))
    grounded = list(spec.unique[:1]) + ([spec.count_pair[1]] if spec.count_pair else list(spec.unique[1:2]))
    out += [_grounding(spec, s) for s in grounded]
    return out


def timeline_answer(spec: VideoSpec) -> str:
    """'red star [00:03], blue ring [00:09]': every event in order with its clock at the start."""
    return ", ".join(f"{e.colour} {e.shape} {format_clock(spec.clock_s(e.start_s))}" for e in spec.events)


def order_pairs(spec: VideoSpec, n: int) -> list[Question]:
    """Up to `n` order questions over pairs of the shapes shown (first appearances), names in a random
    order: the single held-out-style order question per video left order at chance after stage A (the
    model always named one shape, "cross", not even one of the two asked about)."""
    shapes = sorted({e.shape for e in spec.events})
    pairs = [(a, b) for i, a in enumerate(shapes) for b in shapes[i + 1:]]
    rng = np.random.default_rng([spec.seed, spec.duration_s, 2])
    out = []
    for i in rng.permutation(len(pairs))[:n]:
        a, b = pairs[i] if rng.random() < 0.5 else pairs[i][::-1]
        out.append(_order(spec, a, b))
    return out


def training_questions(spec: VideoSpec, max_timeline_events: int = 48, order_pairs_n: int = 0) -> list[Question]:
    """`make_questions` plus denser training-only supervision of the same skills (all single-answer):
    grounding for every shape shown, count for every (colour, shape) shown, "What shape is the red
    object?" for colours shown once, `order_pairs_n` order questions over the shapes shown, and the whole
    timeline (last: its answer must not leak into the others in a multi-turn sample)."""
    out = make_questions(spec)
    asked = {q.text for q in out}
    out += order_pairs(spec, order_pairs_n)
    for shape in sorted({e.shape for e in spec.events}):
        out.append(_grounding(spec, shape))
    for colour, shape in sorted({(e.colour, e.shape) for e in spec.events}):
        out.append(_count(spec, colour, shape))
    colours = [e.colour for e in spec.events]
    for colour in sorted({c for c in colours if colours.count(c) == 1}):
        shape = _first(spec, None, colour).shape
        out.append(Question("shape", QUESTION_TEMPLATES["shape"].format(colour=colour), shape, shape))
    unique = []
    for q in out:
        if q.text not in {u.text for u in unique}:
            unique.append(q)
    extra = [q for q in unique if q.text not in asked]
    base = [q for q in unique if q.text in asked]
    if len(spec.events) <= max_timeline_events:
        extra.append(Question("timeline", QUESTION_TEMPLATES["timeline"], timeline_answer(spec), timeline_answer(spec)))
    return base + extra
