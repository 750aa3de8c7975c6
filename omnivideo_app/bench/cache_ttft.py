"""Benchmark of the persistent video KV cache: cold vs warm time to first token, and load speed.

Cold: a fresh process answers a question about a new video (decode + vision + prefill + store).
Warm: another fresh process asks a *new* question about the same video (stored prefix loaded layer
by layer, question prefill, first token). Both run `App` in a child process, so the warm number
includes nothing left over from the cold run (model load is timed separately and excluded from
TTFT in both). The same run measures the disk's sequential read and the store's load throughput
(storage.disk_speed) in the cache directory.

    python -m omnivideo_app.bench.cache_ttft --model tiny --tokens 65536 --out docs/benchmarks/cache
"""
import argparse
import json
import math
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from omnivideo_app.sample_video import make_sample_video

ROOT = Path(__file__).resolve().parents[2]


def _child(args) -> None:
    """One fresh process: open the video (cold or warm) and answer one question; print a JSON line."""
    from engine.sampling import SamplingParams
    from omnivideo_app.app import App
    from omnivideo_app.config import AppConfig

    app = App(AppConfig(data_dir=Path(args.data_dir), model=args.model, fps=args.fps,
                        total_pixels=args.total_pixels, attention=args.attention))
    _ = app.loaded
    chat = app.open_video(args.video)
    "".join(chat.ask(args.question, SamplingParams(max_new_tokens=4)))
    out = chat.last.as_dict()
    out["load_s"] = app.load_s
    print("RESULT " + json.dumps(out))


def _run_child(args, question: str) -> dict:
    cmd = [sys.executable, "-m", "omnivideo_app.bench.cache_ttft", "--child", "--data-dir", args.data_dir,
           "--model", args.model, "--fps", str(args.fps), "--total-pixels", str(args.total_pixels),
           "--attention", args.attention, "--video", args.video, "--question", question]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [f"cold #{i + 1}" for i in range(len(runs["cold"]))] + [f"warm #{i + 1}" for i in range(len(runs["warm"]))]
    values = [r["timings"]["ttft_s"] for r in runs["cold"] + runs["warm"]]
    ax.bar(names, values, color=["#c44"] * len(runs["cold"]) + ["#4a4"] * len(runs["warm"]))
    ax.set_ylabel("time to first token (s)")
    ax.set_title(f"{result['settings']['model']}, {result['visual_tokens']} visual tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="omnivideo-cache-bench-"))
    # a square clip whose size makes the token count land near --tokens at the given fps and seconds
    frames = max(4, 2 * math.ceil(args.seconds * args.fps / 2))
    per_frame = args.tokens * 2 * 28 * 28 / frames
    side = max(56, int(round(math.sqrt(per_frame) / 28)) * 28)
    video = make_sample_video(work / "bench.mp4", seconds=args.seconds, fps=max(4.0, args.fps * 2), size=(side, side))
    args.video, args.total_pixels = str(video), int(side * side * frames * 1.01)
    args.data_dir = str(work / "data")
    if args.model == "tiny":  # reuse a built tiny checkpoint when there is one
        (work / "data").mkdir()
    runs = {"cold": [], "warm": []}
    for i in range(args.repeats):
        if i:  # a cold run needs an empty cache
            subprocess.run(["rm", "-rf", str(work / "data" / "cache")], check=True)
        runs["cold"].append(_run_child(args, "What happens in this video?"))
        runs["warm"].append(_run_child(args, f"What colour is the ball? ({i})"))
    from storage.disk_speed import measure

    disk = measure(work / "data", gib=args.disk_gib, repeats=3, device=args.device)
    cold = sorted(r["timings"]["ttft_s"] for r in runs["cold"])[len(runs["cold"]) // 2]
    warm = sorted(r["timings"]["ttft_s"] for r in runs["warm"])[len(runs["warm"]) // 2]
    result = {
        "bench": "cache_ttft", "date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(),
        "settings": {"model": args.model, "fps": args.fps, "seconds": args.seconds, "frame_side": side,
                     "attention": args.attention, "repeats": args.repeats, "device": args.device},
        "visual_tokens": runs["cold"][0]["tokens"]["visual"], "prefix_tokens": runs["warm"][0]["tokens"]["reused"],
        "cold_ttft_s": cold, "warm_ttft_s": warm, "warm_over_cold": warm / cold, "runs": runs, "disk": disk,
    }
    (out / "cache.json").write_text(json.dumps(result, indent=2))
    _plot(result, out / "cache.png")
    (out / "report.md").write_text(_report(result))
    return result


def _report(r: dict) -> str:
    d = r["disk"]
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in d["gbps"].items())
    return f"""# Persistent cache: cold vs warm time to first token

Settings: {json.dumps(r['settings'])}; host {r['host']}; {r['date']}.
Visual tokens {r['visual_tokens']}, stored prefix {r['prefix_tokens']} tokens.

| | TTFT (median of {r['settings']['repeats']}) |
|---|---|
| cold (new process, new video: decode + vision + prefill + store) | {r['cold_ttft_s']:.3f} s |
| warm (new process, new question: load + question prefill) | {r['warm_ttft_s']:.3f} s |
| warm / cold | {r['warm_over_cold']:.3f} |

Disk and load throughput in the same run (storage.disk_speed on a {d['entry_bytes'] / 2**30:.2f} GiB entry in the
cache directory, {d['device']}; medians, GB/s; `load_vs_sequential` = store load / best sequential read):

| measure | value |
|---|---|
{rows}

![cold vs warm](cache.png)
"""


def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--tokens", type=int, default=65536, help="target visual tokens (the clip is sized for it)")
    p.add_argument("--seconds", type=float, default=256.0)
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--attention", default="dense")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--disk-gib", type=float, default=1.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks" / "cache"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help=argparse.SUPPRESS)
    p.add_argument("--video", help=argparse.SUPPRESS)
    p.add_argument("--question", help=argparse.SUPPRESS)
    p.add_argument("--total-pixels", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
        return None
    result = run(args)
    print(f"cold {result['cold_ttft_s']:.3f}s  warm {result['warm_ttft_s']:.3f}s  "
          f"ratio {result['warm_over_cold']:.3f}  ({result['visual_tokens']} visual tokens)")
    return result


if __name__ == "__main__":
    main()
