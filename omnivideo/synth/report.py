"""Accuracy reports: per question kind and per length bucket, each next to its prior baseline.

`prior` is the accuracy of the best constant answer on the same questions (what a model that ignores
the video reaches): e.g. ~1/6 for needle, the majority count for count, 1/2 for order.

    report = summarise([(duration_s, question, answer_text, correct), ...])
    report["kinds"]["needle"]      # {"accuracy": 0.94, "n": 64, "prior": 0.22}
"""
import collections

from omnivideo.synth.questions import GROUNDING_TOLERANCE_S
from omnivideo.synth.score import extract

BUCKET_EDGES_S = (15, 60, 240, 960)


def bucket_name(duration_s: float, edges=BUCKET_EDGES_S) -> str:
    lo = 0
    for hi in edges:
        if duration_s <= hi:
            return f"{_fmt(lo)}-{_fmt(hi)}"
        lo = hi
    return f">{_fmt(lo)}"


def _fmt(s: float) -> str:
    return f"{s:g}s" if s < 60 else f"{s / 60:g}m"


def prior_accuracy(questions) -> float:
    """Accuracy of the best constant answer on `questions` (one kind)."""
    if not questions:
        return 0.0
    if questions[0].kind == "grounding":
        times = [int(q.truth) for q in questions]
        return max(sum(abs(c - t) <= GROUNDING_TOLERANCE_S for t in times) for c in set(times)) / len(times)
    return max(collections.Counter(q.truth for q in questions).values()) / len(questions)


def summarise(rows) -> dict:
    """rows: (duration_s, Question, answer, correct) -> the report (kinds, buckets, examples)."""
    kinds, buckets = collections.defaultdict(list), collections.defaultdict(list)
    for duration, q, a, ok in rows:
        kinds[q.kind].append((q, ok))
        buckets[(bucket_name(duration), q.kind)].append((q, ok))

    def stats(items):
        return {"accuracy": round(sum(ok for _, ok in items) / len(items), 4), "n": len(items),
                "prior": round(prior_accuracy([q for q, _ in items]), 4)}

    report = {"kinds": {k: stats(v) for k, v in sorted(kinds.items())}, "buckets": {},
              "overall": round(sum(r[3] for r in rows) / max(1, len(rows)), 4), "questions": len(rows)}
    for (bucket, kind), items in sorted(buckets.items()):
        report["buckets"].setdefault(bucket, {})[kind] = stats(items)
    report["examples"] = [{"question": q.text, "truth": q.answer, "answer": a, "value": extract(q, a), "ok": ok}
                          for _, q, a, ok in rows[:12]]
    return report
