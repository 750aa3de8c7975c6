"""Is a free-form reply the right answer? Normalisation tolerant of wording, strict about the value.

- needle / order: the first colour (shape) word in the reply, after synonyms and plurals, must be the
  truth ("It is red." passes; "blue or red" fails: the first one named counts). For order the word must
  be one of the two shapes asked about.
- count: the first number, in digits or words ("2", "two", "twice").
- grounding: the first time in the reply, "[mm:ss]", "mm:ss", "h:mm:ss" or "N seconds", within
  +-2 s of the truth.

    score(question, "The star is RED.")   # True for truth "red"
"""
import re

from omnivideo.synth.questions import GROUNDING_TOLERANCE_S, Question
from omnivideo.synth.vocab import COLOUR_NAMES, COLOUR_SYNONYMS, NUMBER_WORDS, SHAPE_SYNONYMS, SHAPES

_WORD = re.compile(r"[a-z]+|\d+")
_CLOCK = re.compile(r"(?<![\d:])(?:(\d{1,2}):)?(\d{1,3}):(\d{2})(?![\d:])")
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s|sec|secs|second|seconds)\b")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _singular(word: str) -> str:
    known = SHAPES + tuple(SHAPE_SYNONYMS)
    for suffix in ("es", "s"):   # "crosses", "stars"
        if word.endswith(suffix) and word[: -len(suffix)] in known:
            return word[: -len(suffix)]
    return word


def first_colour(text: str) -> str | None:
    for w in _words(text):
        w = COLOUR_SYNONYMS.get(w, w)
        if w in COLOUR_NAMES:
            return w
    return None


def first_shape(text: str, among: tuple[str, ...] = SHAPES) -> str | None:
    for w in _words(text):
        w = _singular(w)
        w = SHAPE_SYNONYMS.get(w, w)
        if w in among:
            return w
    return None


def first_number(text: str) -> int | None:
    for w in _words(text):
        if w.isdigit():
            return int(w)
        if w in NUMBER_WORDS:
            return NUMBER_WORDS[w]
    return None


def first_time_s(text: str) -> float | None:
    """Seconds of the first time mentioned: [mm:ss], mm:ss, h:mm:ss or "N seconds"; None if there is none."""
    clock = _CLOCK.search(text)
    seconds = _SECONDS.search(text.lower())
    if clock and (not seconds or clock.start() <= seconds.start()):
        hours, minutes, secs = clock.groups()
        return (int(hours or 0) * 60 + int(minutes)) * 60 + int(secs)
    if seconds:
        return float(seconds.group(1))
    return None


def timeline_items(text: str) -> list[tuple[str | None, str | None, float | None]]:
    """'red star [00:03], blue ring [00:09]' -> [('red', 'star', 3), ('blue', 'ring', 9)]."""
    return [(first_colour(part), first_shape(part), first_time_s(part)) for part in text.split(",") if part.strip()]


def _timeline_ok(truth: str, text: str) -> bool:
    want, got = timeline_items(truth), timeline_items(text)
    return len(want) == len(got) and all(
        w[:2] == g[:2] and g[2] is not None and abs(g[2] - w[2]) <= GROUNDING_TOLERANCE_S for w, g in zip(want, got))


def extract(question: Question, text: str):
    """The value the reply gives for this question's kind (None when it gives none)."""
    if question.kind == "needle":
        return first_colour(text)
    if question.kind == "shape":
        return first_shape(text)
    if question.kind == "timeline":
        return timeline_items(text)
    if question.kind == "order":
        return first_shape(text, question.choices or SHAPES)
    if question.kind == "count":
        return first_number(text)
    if question.kind == "grounding":
        return first_time_s(text)
    raise ValueError(f"unknown question kind {question.kind!r}")


def score(question: Question, predicted_text: str) -> bool:
    """True when `predicted_text` answers `question` correctly."""
    if question.kind == "timeline":
        return _timeline_ok(str(question.truth), predicted_text or "")
    value = extract(question, predicted_text or "")
    if value is None:
        return False
    if question.kind == "grounding":
        return abs(value - int(question.truth)) <= GROUNDING_TOLERANCE_S
    return value == question.truth
