"""Progress reporting and cancellation for long work: video sampling, vision, prefill, storing.

A progress callback is any `fn(done: int, total: int, stage: str)`; the CLI feeds a tqdm bar with
it and the UI a `gr.Progress`. Cancellation is cooperative: a `CancelToken` (or a
`threading.Event`, or any object with a `cancelled` attribute) is checked between frames.

    token = CancelToken()
    sample_video(path, cfg, progress=lambda d, t, s: print(s, d, t), cancel=token)
    token.cancel()            # from another thread: the sampler raises VideoCancelled
"""
import threading
from typing import Protocol

from omnivideo.errors import VideoCancelled


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int, stage: str) -> None: ...


class CancelToken:
    """Thread-safe flag: `cancel()` from any thread, `cancelled` read between units of work."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self):
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


def is_cancelled(cancel) -> bool:
    """True when `cancel` (None, a threading.Event, or an object with `.cancelled`) says stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel.cancelled)


def raise_if_cancelled(cancel, what: str):
    if is_cancelled(cancel):
        raise VideoCancelled(f"{what} was cancelled")


def report(progress: ProgressCallback | None, done: int, total: int, stage: str):
    if progress is not None:
        progress(done, total, stage)
