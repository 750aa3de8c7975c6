"""The words of the synthetic world: shapes, colours, question templates, and every string the model says.

Kept in one place because three things must agree on them: the renderer (what is drawn), the
questions (what is asked and answered) and the tokenizer of the trained model (which is trained on
exactly these strings so that each answer is a few tokens).

    COLOURS["red"]          # (230, 40, 40) RGB
    QUESTION_TEMPLATES["needle"].format(shape="star")
"""

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

# Saturated or bright colours, far (in RGB and in hue) from each other and from the dark, greyish
# backgrounds (render.BACKGROUND_*), so colour never depends on codec or lighting subtleties.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 245),
    "yellow": (245, 220, 40),
    "white": (245, 245, 245),
    "magenta": (220, 50, 220),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

KINDS: tuple[str, ...] = ("needle", "count", "order", "grounding")
# Extra kinds asked only in training (denser supervision of the same skills; see questions.training_questions).
TRAINING_KINDS: tuple[str, ...] = ("shape", "timeline")

# One template per kind: the model is ~7M parameters; paraphrase robustness is not the goal.
QUESTION_TEMPLATES: dict[str, str] = {
    "needle": "What colour is the {shape}?",
    "count": "How many times does a {colour} {shape} appear?",
    "order": "Which appears first, the {first} or the {second}?",
    "grounding": "When does the {shape} first appear?",
    "shape": "What shape is the {colour} object?",
    "timeline": "List the objects in order, with their times.",
}

# Words a scorer accepts for a count ("two", "twice" and "2" all mean 2).
NUMBER_WORDS: dict[str, int] = {
    "zero": 0, "none": 0, "never": 0, "one": 1, "once": 1, "two": 2, "twice": 2, "three": 3, "thrice": 3,
    "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}
# British and American spellings and near-synonyms a free-form answer may use.
COLOUR_SYNONYMS: dict[str, str] = {"purple": "magenta", "pink": "magenta", "violet": "magenta", "fuchsia": "magenta"}
SHAPE_SYNONYMS: dict[str, str] = {"plus": "cross", "annulus": "ring", "donut": "ring", "doughnut": "ring",
                                  "disc": "circle", "disk": "circle", "box": "square"}


def all_question_texts() -> list[str]:
    """Every question string the generator can produce (the tokenizer's training corpus)."""
    out = [QUESTION_TEMPLATES["needle"].format(shape=s) for s in SHAPES]
    out += [QUESTION_TEMPLATES["grounding"].format(shape=s) for s in SHAPES]
    out += [QUESTION_TEMPLATES["count"].format(colour=c, shape=s) for c in COLOUR_NAMES for s in SHAPES]
    out += [QUESTION_TEMPLATES["order"].format(first=a, second=b) for a in SHAPES for b in SHAPES if a != b]
    out += [QUESTION_TEMPLATES["shape"].format(colour=c) for c in COLOUR_NAMES]
    out.append(QUESTION_TEMPLATES["timeline"])
    return out


def all_answer_texts() -> list[str]:
    """Every answer form except times (colours, shapes, counts); times are "[mm:ss]" of digits."""
    timeline = [f"{c} {s} [00:0{i}], {c} {s} [00:1{i}]" for i, (c, s) in enumerate(zip(COLOUR_NAMES, SHAPES))]
    return list(COLOUR_NAMES) + list(SHAPES) + [str(n) for n in range(10)] + timeline
