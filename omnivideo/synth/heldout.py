"""A held-out question set: synthetic video files and a questions JSONL that `bench accuracy` reads.

Seeds from `EVAL_SEED_BASE` up are never used in training (omnivideo/train/ keeps its seeds below it),
so a set drawn from there measures the checkpoint on videos it has not seen. Each video is a real file
(H.264 through ffmpeg when it is on PATH, else OpenCV's mp4v), decoded by the app like any user's video.

    rows = write_heldout(Path("heldout"), seeds=range(EVAL_SEED_BASE, EVAL_SEED_BASE + 20), seconds=14)
    # heldout/s1000000000.mp4, ..., heldout/questions.jsonl
"""
import json
from pathlib import Path

from omnivideo.errors import ConfigError
from omnivideo.synth.questions import make_questions
from omnivideo.synth.scene import make_spec
from omnivideo.synth.writer import write_video

EVAL_SEED_BASE = 1_000_000_000


def question_rows(spec, video: str) -> list[dict]:
    """The `bench accuracy` rows of one video: its questions with their truth values."""
    rows = []
    for i, q in enumerate(make_questions(spec)):
        row = {"id": f"{spec.seed}-{i}", "video": video, "kind": q.kind, "question": q.text, "answer": q.answer,
               "truth": q.truth, "seconds": spec.duration_s}
        if q.choices:
            row["choices"] = list(q.choices)
        rows.append(row)
    return rows


def write_heldout(out: Path, seeds, seconds: float, fps: float = 10.0, kinds: tuple[str, ...] | None = None) -> list[dict]:
    """Write one video per seed and `questions.jsonl` (only `kinds`, if given) into `out`; returns the rows."""
    seeds = list(seeds)
    if not seeds or min(seeds) < EVAL_SEED_BASE:
        raise ConfigError(f"held-out seeds must be >= {EVAL_SEED_BASE} (training uses the seeds below)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in seeds:
        spec = make_spec(seed, seconds)
        name = f"s{seed}.mp4"
        if not (out / name).exists():
            write_video(spec, out / name, fps=fps)
        rows += [r for r in question_rows(spec, name) if kinds is None or r["kind"] in kinds]
    (out / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
