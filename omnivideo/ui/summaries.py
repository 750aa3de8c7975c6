"""What the page shows about plans, answers, library entries and sessions: dicts from the app -> text.

Pure formatting over the dicts `App.plan()`, `AnswerResult.as_dict()`, `App.library()` and
`App.sessions()` return, so every figure on the page is checked by a unit test on a fixed dict.

    plan_summary(app.plan("match.mp4"))      # markdown, with the planner's warning in bold
    library_rows(app.library(), now=time.time())
"""
import time
from pathlib import Path

from omnivideo.app.app import format_mmss

LIBRARY_HEADERS = ["Video", "Duration", "Model", "Attention", "Sampling", "Visual tokens", "Cache size",
                   "Last used", "Entry"]
SESSION_HEADERS = ["Title", "Video", "Model", "Messages", "Updated"]
# why an answer ended, when it was not the model's own end of turn
STOP_NOTES = {"stopped": "stopped by you", "length": "cut at the answer length (Settings)"}


def format_bytes(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def format_ago(ts: float | None, now: float) -> str:
    if not ts:
        return "—"
    s = max(0.0, now - ts)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h ago"
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def format_sampling(sampling: dict | None) -> str:
    """The settings that chose the frames: '2 fps, ≤768 frames' or '16 frames'."""
    if not sampling:
        return "—"
    if sampling.get("nframes"):
        return f"{sampling['nframes']} frames"
    return f"{sampling.get('fps', 0):g} fps, ≤{sampling.get('max_frames')} frames"


def frame_caption(seconds: float, precise: bool) -> str:
    """A strip caption: 'mm:ss', or 'mm:ss.t' (to the tenth) when frames are under 2 s apart."""
    if not precise:
        return format_mmss(seconds)
    tenths = round(seconds * 10)
    return f"{format_mmss(tenths // 10)}.{tenths % 10}"


def plan_summary(report: dict) -> str:
    """The planner's estimate before ingest, as markdown."""
    s = report["sampled"]
    gpu = report.get("gpu_memory_bytes")
    lines = [
        f"**{Path(report['path']).name}**: {format_mmss(report['duration_s'])} · {report['width']}×{report['height']} "
        f"{report.get('codec') or ''} · {report['fps']:.3g} fps",
        f"Sampling: {s['count']} frames at {s['resized_width']}×{s['resized_height']} → "
        f"**{report['visual_tokens']:,} visual tokens** (model `{report['model']}`, attention `{report['attention']}`)",
        f"Memory: KV cache {format_bytes(report.get('kv_bytes'))} · estimated GPU "
        f"{format_bytes(report.get('gpu_estimate_bytes'))} "
        + (f"of {format_bytes(gpu)}" if gpu else "(no GPU detected on this machine)"),
    ]
    if report.get("warning"):
        lines.append(f"⚠️ **Will not fit: {report['warning']}**")
    elif report.get("fits"):
        lines.append("✅ Fits on this GPU.")
    return "  \n".join(lines)


def answer_details(result: dict) -> str:
    """One line of per-answer figures: cache hit, TTFT, tokens reused, attention preset, and why it
    ended when the model did not end it (stopped, or cut at the length limit)."""
    tokens, timings = result.get("tokens", {}), result.get("timings", {})
    parts = ["cache hit" if result.get("cache_hit") else "cache miss (video ingested)"]
    if "ttft_s" in timings:
        parts.append(f"TTFT {timings['ttft_s']:.2f} s")
    if "reused" in tokens:
        parts.append(f"{tokens['reused']:,} tokens reused")
    parts.append(f"attention {result.get('attention', '?')}")
    if "generated" in tokens:
        parts.append(f"{tokens['generated']} tokens generated")
    if "total_s" in timings:
        parts.append(f"total {timings['total_s']:.2f} s")
    if result.get("stop_reason") in STOP_NOTES:
        parts.append(STOP_NOTES[result["stop_reason"]])
    return " · ".join(parts)


def video_status(video, now_open: bool = True) -> str:
    """The line above the player: which video, how many frames and tokens, and where it came from."""
    origin = "loaded from the cache" if video.cache_hit else "ingested"
    line = (f"**{Path(video.path).name}** · {format_mmss(video.duration_s)} · {len(video.timestamps_s)} frames · "
            f"{video.visual_tokens:,} visual tokens · {origin}")
    if video.extra.get("store_error"):
        line += f"  \n⚠️ not stored: {video.extra['store_error']}"
    return line


def library_rows(items: list[dict], now: float) -> list[list]:
    rows = []
    for it in items:
        duration = it.get("duration_s")
        rows.append([Path(it.get("video_path") or "?").name, format_mmss(duration) if duration else "—",
                     it.get("model_id", "?"), it.get("attention_preset") or "—", format_sampling(it.get("sampling")),
                     f"{it['num_visual_tokens']:,}" if it.get("num_visual_tokens") is not None else "—",
                     format_bytes(it.get("nbytes")), format_ago(it.get("last_used_at"), now),
                     it["entry_id"][:12]])
    return rows


def library_choices(items: list[dict]) -> list[tuple[str, str]]:
    return [(f"{Path(it.get('video_path') or '?').name} · {it.get('model_id')} · {it.get('attention_preset')} · "
             f"{format_sampling(it.get('sampling'))} · {it['entry_id'][:8]}", it["entry_id"]) for it in items]


def session_rows(items: list[dict], now: float) -> list[list]:
    return [[it.get("title") or "(untitled)", Path(it.get("video_path") or "?").name, it.get("model_id", "?"),
             it.get("num_messages", 0), format_ago(it.get("updated_at"), now)] for it in items]


def session_choices(items: list[dict], now: float) -> list[tuple[str, str]]:
    return [(f"{it.get('title') or '(untitled)'} · {Path(it.get('video_path') or '?').name} · "
             f"{format_ago(it.get('updated_at'), now)}", it["id"]) for it in items]
