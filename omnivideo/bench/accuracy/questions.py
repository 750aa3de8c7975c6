"""The question files `bench accuracy` reads: one JSON object per line, each a question about a video.

Two families, told apart by `kind`:
- synthetic-video kinds (`needle`, `count`, `order`, `grounding`, ...; omnivideo/synth/): `answer` is the
  canonical reply and `truth` the value scoring compares (a colour, a shape, a count, seconds);
  `choices` the two shapes of an `order` question. Scored by `omnivideo.synth.score`.
- `choice`: multiple choice, as Video-MME and similar benchmarks ship it. `options` lists the choices
  ("A. a red car", ...), `answer` is the right letter. The prompt appends the options and asks for the
  letter; the first standalone letter of the reply is compared.

    {"video": "clips/s1000.mp4", "kind": "needle", "question": "What colour is the star?", "answer": "red", "truth": "red"}
    {"video": "match.mp4", "kind": "choice", "question": "Who scores first?", "options": ["A. Red", "B. Blue"], "answer": "B"}

Relative `video` paths are read from the JSONL file's folder. `id` (default: the line number) names a
question in the results.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from omnivideo.errors import ConfigError

CHOICE_PROMPT = "Answer with the option's letter from the given choices directly."
_LETTER = re.compile(r"(?<![A-Za-z])([A-Z])(?![A-Za-z])")


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    video: Path
    kind: str
    question: str
    answer: str
    truth: object = None
    choices: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def prompt(self) -> str:
        """What is asked: the question, and for multiple choice its options and the instruction."""
        if self.kind != "choice":
            return self.question
        return "\n".join([self.question, *self.options, CHOICE_PROMPT])

    def is_correct(self, reply: str) -> bool:
        if self.kind == "choice":
            found = _LETTER.search(reply.strip())
            return found is not None and found.group(1) == self.answer.strip().upper()[:1]
        from omnivideo.synth.questions import Question
        from omnivideo.synth.score import score

        return score(Question(self.kind, self.question, self.answer, self.truth, tuple(self.choices)), reply)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Parse a questions JSONL file; a bad line is a ConfigError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no questions file at {path}")
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            video = Path(row["video"])
            kind, question, answer = str(row["kind"]), str(row["question"]), str(row["answer"])
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}:{n}: not a question object ({e})") from e
        if kind == "choice" and not row.get("options"):
            raise ConfigError(f"{path}:{n}: a choice question needs its options")
        if kind != "choice" and "truth" not in row:
            raise ConfigError(f"{path}:{n}: a {kind} question needs its truth value")
        known = {"id", "video", "kind", "question", "answer", "truth", "choices", "options"}
        out.append(EvalQuestion(id=str(row.get("id", n)), video=video if video.is_absolute() else path.parent / video,
                                kind=kind, question=question, answer=answer, truth=row.get("truth"),
                                choices=tuple(row.get("choices", ())), options=tuple(row.get("options", ())),
                                extra={k: v for k, v in row.items() if k not in known}))
    if not out:
        raise ConfigError(f"{path} holds no questions")
    return out
