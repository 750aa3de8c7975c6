"""Ingest progress for the page: the app's `progress(done, total, stage)` -> a line with the stage's ETA.

The app reports each stage separately (probe, decode/sample, vision, prefill, store, or load when
the video comes from the cache). The ETA is per stage, from that stage's own rate so far: stages run
at very different speeds, so one overall rate would be wrong in every one of them.

    bar = StageProgress(lambda fraction, text: gr_progress(fraction, desc=text))
    app.ingest(path, progress=bar)        # bar(12, 48, "sample") -> "decoding frames 12/48 · ETA 9 s"

Counts are shown in the units the planner's estimate uses (frames, tokens), each with its unit.
"""
import time
from collections.abc import Callable

STAGE_LABELS = {
    "probe": "reading the video's metadata",
    "sample": "decoding frames",
    "decode": "decoding frames",
    "vision": "encoding frames",
    "prefill": "prefill",
    "store": "storing the KV cache",
    "load": "loading from the cache",
}
# What a stage counts, named after its count, so no figure is read as another: the prefill counts
# every prefix token, the video's (the planner's "visual tokens") and the prompt's around them.
STAGE_UNITS = {"prefill": " tokens (video + prompt)", "store": " layers"}
FRAME_STAGES = ("sample", "decode")


def format_eta(seconds: float) -> str:
    """3.2 -> '4 s'; 95 -> '1 min 35 s'; 4000 -> '1 h 07 min'."""
    s = max(0, int(seconds + 0.999))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class StageProgress:
    """A progress callback that turns stage counts into (fraction, text) for a sink (a `gr.Progress`).

    Each stage keeps its own clock from its first report, also when the pipelined ingest interleaves
    them (decode, vision and prefill report in turns): the text then names every stage still running
    (reported within `PIPELINE_WINDOW_S`), and the fraction is the one furthest behind.
    """

    PIPELINE_WINDOW_S = 1.0

    def __init__(self, sink: Callable[[float, str], None], clock: Callable[[], float] = time.monotonic):
        self.sink = sink
        self.clock = clock
        self.stages_seen: list[str] = []
        self._state: dict[str, list[float]] = {}   # stage -> [done, total, first report, last report]
        self.last_text = ""

    def __call__(self, done: int, total: int, stage: str) -> None:
        now = self.clock()
        total = max(total, 1)
        done = min(max(done, 0), total)
        done, total = self._in_frames(done, total, stage)
        if stage not in self._state:
            self._state[stage] = [done, total, now, now]
            self.stages_seen.append(stage)
        st = self._state[stage]
        st[0], st[1], st[3] = done, total, now
        others = [s for s in self.stages_seen if s != stage and self._state[s][0] < self._state[s][1]
                  and now - self._state[s][3] <= self.PIPELINE_WINDOW_S]
        parts = [self.describe(done, total, stage, now - st[2])]
        parts += [self.describe(int(self._state[s][0]), int(self._state[s][1]), s, 0.0) for s in others]
        self.last_text = " | ".join(parts)
        self.sink(min([done / total] + [self._state[s][0] / self._state[s][1] for s in others]), self.last_text)

    def _in_frames(self, done: int, total: int, stage: str) -> tuple[int, int]:
        """The vision tower counts frame groups (2 frames each for Qwen2.5-VL); shown as frames, out of
        the decode stage's frame count (the planner's), so "encoding frames" ends at the same 12 as
        "decoding frames" did."""
        frames = next((self._state[s][1] for s in FRAME_STAGES if s in self._state), None)
        if stage != "vision" or not frames or frames % total:
            return done, total
        return done * int(frames) // total, int(frames)

    @staticmethod
    def describe(done: int, total: int, stage: str, elapsed_s: float) -> str:
        label = STAGE_LABELS.get(stage, stage)
        text = f"{label} {done}/{total}{STAGE_UNITS.get(stage, '')}"
        if 0 < done < total and elapsed_s > 0:
            text += f" · ETA {format_eta(elapsed_s / done * (total - done))}"
        return text
