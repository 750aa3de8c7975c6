"""Answer normalisation: tolerant of wording, strict about the value."""
import pytest

from omnivideo.synth.questions import Question, format_clock, training_questions
from omnivideo.synth.scene import make_spec
from omnivideo.synth.score import first_time_s, score

NEEDLE = Question("needle", "What colour is the star?", "red", "red")
COUNT = Question("count", "How many times does a red square appear?", "2", 2)
ORDER = Question("order", "Which appears first, the star or the ring?", "ring", "ring", ("star", "ring"))
GROUND = Question("grounding", "When does the star first appear?", "[01:05]", 65)


@pytest.mark.parametrize("q,text,ok", [
    (NEEDLE, "red", True), (NEEDLE, "The star is RED.", True), (NEEDLE, "It's red!", True),
    (NEEDLE, "blue", False), (NEEDLE, "blue, not red", False), (NEEDLE, "", False), (NEEDLE, "reddish", False),
    (COUNT, "2", True), (COUNT, "two", True), (COUNT, "It appears twice.", True), (COUNT, "3", False),
    (COUNT, "twenty", False), (COUNT, "12", False),
    (ORDER, "ring", True), (ORDER, "The ring appears first, then the star.", True), (ORDER, "rings", True),
    (ORDER, "star", False), (ORDER, "circle", False), (ORDER, "the circle, no: the ring", True),
    (GROUND, "[01:05]", True), (GROUND, "01:07", True), (GROUND, "at 1:03", True), (GROUND, "[01:08]", False),
    (GROUND, "65 seconds", True), (GROUND, "0:01:05", True), (GROUND, "never", False), (GROUND, "[00:05]", False),
])
def test_score(q, text, ok):
    assert score(q, text) is ok


def test_first_time_prefers_the_earliest_mention():
    assert first_time_s("at 12 s, i.e. [00:12], not [00:40]") == 12.0
    assert first_time_s("[00:40] or 12 s") == 40


def test_format_clock():
    assert format_clock(0) == "[00:00]" and format_clock(754) == "[12:34]" and format_clock(3599) == "[59:59]"


def test_every_training_answer_scores_and_a_changed_one_does_not():
    for seed in range(10):
        spec = make_spec(seed, 120)
        for q in training_questions(spec):
            assert score(q, q.answer), q
            if q.kind == "timeline":
                assert not score(q, q.answer.rsplit(",", 1)[0]) or len(spec.events) == 1
            elif q.kind == "grounding":
                assert not score(q, format_clock(int(q.truth) + 3))
