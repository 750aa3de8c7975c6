"""`bench accuracy`: ask every question of a JSONL file through the app and score the replies.

The questions go through exactly what `ask` runs (App.open_video -> VideoChat.ask: the persistent store,
the engine's prefill and decode loop, the chosen `--attention` preset and `--gamma-decode`), one fresh
first turn per question. A video's first question ingests it (cold); the next ones load its stored
prefix (warm). Results per question, and accuracy per kind and per length bucket (visual tokens).

    bench = AccuracyBench(questions=Path("heldout/questions.jsonl"), model="synth", attention="balanced")
    result = run(bench, data_dir, on_progress=print)
"""
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from omnivideo.bench.accuracy.questions import load_questions
from omnivideo.errors import ConfigError

BUCKETS = (1024, 4096, 16384, 32768, 65536, 131072)   # upper bounds of the length buckets, visual tokens


def bucket_of(tokens: int) -> str:
    for bound in BUCKETS:
        if tokens <= bound:
            return f"<={bound // 1024}K"
    return f">{BUCKETS[-1] // 1024}K"


@dataclass(frozen=True)
class AccuracyBench:
    questions: Path
    model: str = "synth"
    attention: str = "dense"
    gamma_decode: float = 1.0
    fps: float | None = 2.0
    max_frames: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    quant: str = "auto"
    max_new_tokens: int = 24
    limit: int | None = None
    prefill_linears: str = "bf16"

    def __post_init__(self):
        if self.max_new_tokens < 1 or (self.limit is not None and self.limit < 1):
            raise ConfigError("max-new-tokens and limit must be >= 1")


def _summary(rows: list[dict], key: str) -> dict:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r)
    return {name: {"n": len(g), "correct": sum(r["correct"] for r in g),
                   "accuracy": round(sum(r["correct"] for r in g) / len(g), 4)} for name, g in sorted(groups.items())}


def summarize(rows: list[dict]) -> dict:
    """Accuracy overall, per kind, per length bucket and per (kind, bucket); mean TTFT cold and warm."""
    both = [dict(r, kind_bucket=f"{r['kind']} {r['bucket']}") for r in rows]
    cold = [r["ttft_s"] for r in rows if not r["cache_hit"]]
    warm = [r["ttft_s"] for r in rows if r["cache_hit"]]
    return {"n": len(rows), "accuracy": round(sum(r["correct"] for r in rows) / len(rows), 4) if rows else None,
            "by_kind": _summary(rows, "kind"), "by_bucket": _summary(rows, "bucket"),
            "by_kind_bucket": _summary(both, "kind_bucket"),
            "ttft_s": {"cold_mean": round(sum(cold) / len(cold), 4) if cold else None,
                       "warm_mean": round(sum(warm) / len(warm), 4) if warm else None}}


def run(bench: AccuracyBench, data_dir: Path, on_progress=None) -> dict:
    from omnivideo.app.app import App
    from omnivideo.app.config import AppConfig
    from omnivideo.engine.sampling import SamplingParams

    questions = load_questions(bench.questions)[: bench.limit]
    app = App(AppConfig(data_dir=data_dir, model=bench.model, attention=bench.attention, fps=bench.fps,
                        max_frames=bench.max_frames, device=bench.device, dtype=bench.dtype, quant=bench.quant,
                        gamma_decode=bench.gamma_decode, prefill_linears=bench.prefill_linears))
    result = {"bench": "accuracy", "date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(),
              "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(bench).items()},
              "rows": [], "complete": False}
    params = SamplingParams(max_new_tokens=bench.max_new_tokens)
    t0 = time.perf_counter()
    try:
        for q in questions:
            chat = app.open_video(q.video, sessions=False)
            reply = "".join(chat.ask(q.prompt(), params))
            a = chat.last.as_dict()
            result["rows"].append({
                "id": q.id, "video": str(q.video), "kind": q.kind, "question": q.question, "expected": q.answer,
                "reply": reply, "correct": q.is_correct(reply), "visual_tokens": a["tokens"]["visual"],
                "bucket": bucket_of(a["tokens"]["visual"]), "cache_hit": a["cache_hit"],
                "ttft_s": a["timings"]["ttft_s"], "total_s": a["timings"]["total_s"],
                "prompt_tokens": a["tokens"]["prompt"], "generated": a["tokens"]["generated"],
                "sparse": a.get("sparse"), "decode": a.get("decode"), "linears": a["linears"]["prefill"]})
            if on_progress is not None:
                on_progress({**result, "summary": summarize(result["rows"])})
        result["device"] = str(app.loaded.device)
        result["model_revision"] = app.loaded.revision
    finally:
        app.close()
    result.update(complete=True, seconds=round(time.perf_counter() - t0, 1), summary=summarize(result["rows"]))
    return result
