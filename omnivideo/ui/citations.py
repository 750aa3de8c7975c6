"""Timestamp citations in answers: `[mm:ss]` (or `[h:mm:ss]`, or a range `[mm:ss-mm:ss]`) -> seek links.

The model is asked to cite moments as `[mm:ss]` (omnivideo.app.answer.SYSTEM_PROMPT). Each cited
time becomes `<a href="#t=SECONDS" class="ov-seek">mm:ss</a>`; the page's script (omnivideo/ui/player.py)
catches clicks on `#t=` links and seeks the player. Pure text processing, no Gradio.

    linkify("The goal is at [01:05].")
    # 'The goal is at [<a href="#t=65" class="ov-seek" title="Play from 01:05">01:05</a>].'
"""
import html
import re

_TIME = r"(?:\d{1,2}:[0-5]\d:[0-5]\d|\d{1,3}:[0-5]\d)"
# One bracketed citation: a time, or a range of two times joined by -, – or "to".
CITATION = re.compile(rf"\[\s*(?P<start>{_TIME})(?:\s*(?P<sep>-|–|—|to)\s*(?P<end>{_TIME}))?\s*\]")
# Seconds of slack past the video's end: a citation of the last frame's rounded time is still valid.
END_SLACK_S = 1.0


def parse_time(text: str) -> float:
    """'01:05' -> 65.0; '1:02:05' -> 3725.0. Raises ValueError on anything else."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a [mm:ss] or [h:mm:ss] time: {text!r}")
    seconds = 0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return float(seconds)


def seek_link(seconds: float, label: str) -> str:
    """An anchor the page script turns into a seek of the player to `seconds`."""
    label = html.escape(label)
    return f'<a href="#t={seconds:g}" class="ov-seek" title="Play from {label}">{label}</a>'


def cited_times(text: str) -> list[float]:
    """Every cited time in `text`, in order (both ends of a range)."""
    out = []
    for m in CITATION.finditer(text):
        out.append(parse_time(m["start"]))
        if m["end"]:
            out.append(parse_time(m["end"]))
    return out


def _escape(text: str) -> str:
    # `<` and `&` only: enough that the model's text can never open a tag, while markdown that
    # uses `>` (quotes) still renders. Gradio's sanitizer is the second line of defence.
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _in_video(seconds: float, duration_s: float | None) -> bool:
    return duration_s is None or seconds <= duration_s + END_SLACK_S


def linkify(text: str, duration_s: float | None = None) -> str:
    """`text` with `<` / `&` escaped and every citation inside the video turned into a seek link.

    A citation past `duration_s` (the model made it up) stays plain text: a link would seek nowhere.
    """
    out, pos = [], 0
    for m in CITATION.finditer(text):
        times = [m["start"]] + ([m["end"]] if m["end"] else [])
        if not all(_in_video(parse_time(t), duration_s) for t in times):
            continue
        out.append(_escape(text[pos:m.start()]))
        links = [seek_link(parse_time(t), t) for t in times]
        sep = f" {m['sep']} " if m["sep"] == "to" else m["sep"]
        out.append("[" + (sep.join(links) if m["end"] else links[0]) + "]")
        pos = m.end()
    out.append(_escape(text[pos:]))
    return "".join(out)
