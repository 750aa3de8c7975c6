"""Stage clocks: when each unit of work (frame decoding, vision chunks, prefill rounds) started and ended.

Shared by the engine (which records spans), the app (which reports busy time per stage) and the
benchmarks (which plot the timeline of a pipelined ingest).

    timeline = StageTimeline(device)
    with timeline.span("decode", i): ...            # host work
    with timeline.device_span("vision", i): ...     # device work (CUDA events, read once at finish)
    timeline.finish()  # [{"stage", "index", "start_s", "end_s", "lane"}, ...] sorted by start
"""
import threading
import time
from contextlib import contextmanager

import torch


class StageTimeline:
    """Start and end of every unit of work, per stage, in seconds since the timeline was made.

    Host work (decode threads) is timed with perf_counter; device work with CUDA events read once at
    `finish()` (no synchronisation inside the pipeline), placed on the same clock through a reference
    event recorded while the device was idle. Thread-safe.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self._lock = threading.Lock()
        self._spans: list[dict] = []
        self._events: list[tuple[str, int, object, object]] = []
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            self._ref = torch.cuda.Event(enable_timing=True)
            self._ref.record()
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0

    def add(self, stage: str, index: int, start_s: float, end_s: float, lane: str) -> None:
        with self._lock:
            self._spans.append({"stage": stage, "index": index, "start_s": start_s, "end_s": end_s, "lane": lane})

    @contextmanager
    def span(self, stage: str, index: int, lane: str = "host"):
        start = self.now()
        try:
            yield
        finally:
            self.add(stage, index, start, self.now(), lane)

    @contextmanager
    def device_span(self, stage: str, index: int):
        """Device work enqueued inside the block (CUDA: events; CPU: the host span)."""
        if self.device.type != "cuda":
            with self.span(stage, index, "device"):
                yield
            return
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        try:
            yield
        finally:
            end.record()
            with self._lock:
                self._events.append((stage, index, start, end))

    def finish(self) -> list[dict]:
        """All spans sorted by start (synchronises the device once to read the events)."""
        if self._events:
            torch.cuda.synchronize(self.device)
            for stage, index, start, end in self._events:
                self._spans.append({"stage": stage, "index": index, "lane": "device",
                                    "start_s": self._ref.elapsed_time(start) / 1000,
                                    "end_s": self._ref.elapsed_time(end) / 1000})
            self._events = []
        return sorted(self._spans, key=lambda s: (s["start_s"], s["stage"]))

    def busy_s(self, stage: str) -> float:
        """Summed duration of a stage's spans (call after `finish`)."""
        return sum(s["end_s"] - s["start_s"] for s in self._spans if s["stage"] == stage)
