"""What one answered question reports (`ask --json`), and time formatting shared by CLI and UI."""
from dataclasses import dataclass, field

# Instructions stored in the video prefix. They must not depend on the video (or the question): the
# prefix's template tokens are part of the cache key, computed before the video is opened.
SYSTEM_PROMPT = ("You are a helpful assistant. When you refer to a moment in the video, cite its time "
                 "as [mm:ss].")


def format_mmss(seconds: float) -> str:
    """12.4 -> '00:12'; 3725 -> '1:02:05'."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


@dataclass
class AnswerResult:
    """One answered question: the `ask --json` object."""
    answer: str
    model: str
    attention: str
    cache_hit: bool
    timings: dict
    tokens: dict
    frames: dict
    stop_reason: str = "stop"
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"answer": self.answer, "model": self.model, "attention": self.attention,
               "cache_hit": self.cache_hit, "timings": self.timings, "tokens": self.tokens,
               "frames": self.frames, "stop_reason": self.stop_reason}
        out.update(self.extra)
        return out
