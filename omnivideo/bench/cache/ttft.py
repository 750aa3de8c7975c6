"""Benchmark of the persistent video KV cache: cold vs warm time to first token, and load speed.

Cold: a fresh process answers a question about a new video (decode + vision + prefill + store).
Warm: another fresh process asks a *new* question about the same video (stored prefix loaded layer
by layer, question prefill, first token). Both run `App` in a child process, so the warm number
includes nothing left over from the cold run (model load is timed separately and excluded from
TTFT in both). The same run measures the disk's sequential read and the store's load throughput
(storage.disk_speed) in the cache directory.

    omnivideo bench cache --model tiny --tokens 65536 --out docs/benchmarks/cache
"""
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from omnivideo.app.sample_video import make_sample_video
from omnivideo.errors import ConfigError


@dataclass(frozen=True)
class CacheBench:
    model: str = "tiny"
    tokens: int = 65536       # target visual tokens (the clip is sized for it)
    seconds: float = 256.0
    fps: float = 2.0
    attention: str = "dense"
    repeats: int = 2
    disk_gib: float = 1.0
    device: str = "cpu"

    def __post_init__(self):
        if self.tokens < 64 or self.seconds <= 0 or self.fps <= 0 or self.repeats < 1 or self.disk_gib <= 0:
            raise ConfigError("cache bench: tokens >= 64, seconds, fps, disk_gib > 0 and repeats >= 1")


def child_main(spec_json: str) -> None:
    """One fresh process: open the video (cold or warm) and answer one question; print a JSON line."""
    from omnivideo.engine.sampling import SamplingParams
    from omnivideo.app.app import App
    from omnivideo.app.config import AppConfig

    spec = json.loads(spec_json)
    app = App(AppConfig(data_dir=Path(spec["data_dir"]), model=spec["model"], fps=spec["fps"],
                        total_pixels=spec["total_pixels"], attention=spec["attention"]))
    _ = app.loaded
    chat = app.open_video(spec["video"])
    "".join(chat.ask(spec["question"], SamplingParams(max_new_tokens=4)))
    out = chat.last.as_dict()
    out["load_s"] = app.load_s
    print("RESULT " + json.dumps(out))


def drop_page_cache(root: Path) -> str:
    """Evict `root`'s files from the page cache, so a warm run reads its entry from the disk; returns how.

    As root the kernel drops every clean page (/proc/sys/vm/drop_caches); otherwise each file is flushed
    and then advised away (storage.disk_speed.drop_cached_pages), which evicts its clean pages all the same."""
    from omnivideo.storage.disk_speed import drop_cached_pages

    drop_cached_pages([f for f in Path(root).rglob("*") if f.is_file()])
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return "drop_caches (root) + posix_fadvise DONTNEED"
    except OSError:
        return "posix_fadvise DONTNEED on every cache file"


def _run_child(spec: dict, question: str) -> dict:
    code = "import sys; from omnivideo.bench.cache.ttft import child_main; child_main(sys.argv[1])"
    cmd = [sys.executable, "-c", code, json.dumps({**spec, "question": question})]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
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


def run(bench: CacheBench, out: Path) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="omnivideo-cache-bench-"))
    # a square clip whose size makes the token count land near `tokens` at the given fps and seconds
    frames = max(4, 2 * math.ceil(bench.seconds * bench.fps / 2))
    per_frame = bench.tokens * 2 * 28 * 28 / frames
    side = max(56, int(round(math.sqrt(per_frame) / 28)) * 28)
    video = make_sample_video(work / "bench.mp4", seconds=bench.seconds, fps=max(4.0, bench.fps * 2),
                              size=(side, side))
    spec = {"model": bench.model, "fps": bench.fps, "attention": bench.attention, "video": str(video),
            "total_pixels": int(side * side * frames * 1.01), "data_dir": str(work / "data")}
    (work / "data").mkdir()
    runs = {"cold": [], "warm": []}
    for i in range(bench.repeats):
        if i:  # a cold run needs an empty cache
            subprocess.run(["rm", "-rf", str(work / "data" / "cache")], check=True)
        runs["cold"].append(_run_child(spec, "What happens in this video?"))
        page_cache = drop_page_cache(work / "data" / "cache")   # the warm run reads the entry from the disk
        runs["warm"].append(_run_child(spec, f"What colour is the ball? ({i})"))
    from omnivideo.storage.disk_speed import measure

    disk = measure(work / "data", gib=bench.disk_gib, repeats=3, device=bench.device)
    cold = statistics.median(r["timings"]["ttft_s"] for r in runs["cold"])
    warm = statistics.median(r["timings"]["ttft_s"] for r in runs["warm"])
    result = {
        "bench": "cache_ttft", "date": time.strftime("%Y-%m-%d %H:%M"), "host": platform.node(),
        "settings": {**asdict(bench), "frame_side": side, "page_cache_before_warm": page_cache},
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
| warm (new process, new question: load from disk + question prefill; page cache dropped first: {r['settings'].get('page_cache_before_warm', 'no')}) | {r['warm_ttft_s']:.3f} s |
| warm / cold | {r['warm_over_cold']:.3f} |

Disk and load throughput in the same run (storage.disk_speed on a {d['entry_bytes'] / 2**30:.2f} GiB entry in the
cache directory, {d['device']}; medians, GB/s; `load_vs_sequential` = store load / best sequential read):

| measure | value |
|---|---|
{rows}

![cold vs warm](cache.png)
"""
