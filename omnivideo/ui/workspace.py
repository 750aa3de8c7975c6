"""What one server shares across browser tabs: the app (one model in memory), its lock, the open chats.

The engine runs one piece of model work at a time, so ingest, open and ask take `lock`; cancel
does not (it only sets a flag the app checks between frames and chunks, and an answer after each
token: the Chat tab's Stop). Each browser session
(Gradio's `session_hash`) has at most one open `VideoChat`, and only the `max_open_chats` most
recently used stay in memory (each holds a video's KV); a chat dropped from memory is reopened from
the store at its next question, with its turns, from the `{"video", "session_id"}` the page keeps.

    ws = Workspace(App(cfg), FileAccess(cfg.data_dir))
    chat = ws.open(key, "match.mp4", progress)
    for piece in ws.ask(chat, "Who scores?", key): ...     # ws.cancel(key) from another thread stops it
"""
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from omnivideo.app.app import App, SamplingParams
from omnivideo.errors import OmniVideoError, SessionError
from omnivideo.app.video import CancelToken, SamplingConfig, sample_video
from omnivideo.app.video.sampling import VIDEO_MIN_PIXELS
from omnivideo.ui.playback import Playback
from omnivideo.ui.access import FileAccess
from omnivideo.ui.settings import Settings
from omnivideo.ui.summaries import frame_caption

STRIP_FRAMES = 12  # thumbnails in the strip under the player


def empty_state() -> dict:
    """What the page remembers about its chat: enough to reopen it after a restart."""
    return {"video": None, "session_id": None}


class Workspace:
    def __init__(self, app: App, access: FileAccess, *, max_open_chats: int = 2, max_new_tokens: int = 256):
        self.app = app
        self.access = access
        # A plain Lock, not an RLock: Gradio advances a streaming generator from whichever worker
        # thread is free, so `ask` may release the lock on another thread than the one that took it.
        self.lock = threading.Lock()
        self.max_open_chats = max_open_chats
        self.max_new_tokens = max_new_tokens
        self._chats: OrderedDict[str, object] = OrderedDict()
        self._cancels: dict[str, CancelToken] = {}
        self._strips: OrderedDict[str, tuple[list, list[float]]] = OrderedDict()
        self.playback = Playback(access.playback_dir)

    # -- settings -------------------------------------------------------------------------------------
    def settings(self) -> Settings:
        c = self.app.config
        return Settings(model=c.model, fps=c.fps or 2.0, max_frames=c.max_frames, attention=c.attention,
                        max_new_tokens=self.max_new_tokens)

    def apply(self, s: Settings) -> str:
        """Switch to `s`; a new config means a new app (the old one's model is released first)."""
        cfg = dataclasses.replace(self.app.config, model=s.model, fps=s.fps, max_frames=s.max_frames,
                                  attention=s.attention)
        with self.lock:
            self.max_new_tokens = s.max_new_tokens
            if cfg == self.app.config:
                return "Settings applied."
            old, self.app = self.app, self.app.reconfigured(cfg)
            self._chats.clear()
            old.close()                       # releases its model unless the new app kept it
        return "Settings applied: open chats reopen with them at their next question."

    # -- library --------------------------------------------------------------------------------------
    def plan(self, path: str | Path) -> dict:
        return self.app.plan(path)

    def oom_hint(self, path: str | Path | None) -> str | None:
        """The planner's advice after an out-of-memory error: its warning, or its estimate."""
        if path is None:
            return None
        report = self.plan(path)
        if report.get("warning"):
            return report["warning"]
        # not the attention presets: they skip prefill work, the stored KV (what fills memory) stays complete
        return (f"the planner estimated {report['visual_tokens']:,} visual tokens; lower fps or max frames "
                "in Settings (fewer visual tokens is what lowers memory)")

    def library(self) -> list[dict]:
        return self.app.library()

    def sessions(self) -> list[dict]:
        return self.app.sessions()

    def entry(self, entry_id: str | None) -> dict:
        for item in self.library():
            if item["entry_id"] == entry_id:
                return item
        raise OmniVideoError("pick a video of the library first" if not entry_id
                             else f"library entry {entry_id[:8]} is gone (removed?)")

    def ingest(self, key: str, path: str | Path, progress=None):
        token = self._new_cancel(key)
        with self.lock:
            opened = self.app.ingest(path, progress=progress, cancel=token)
        self.access.allow(opened.path)
        return opened

    def remove(self, entry_id: str) -> None:
        with self.lock:
            self.app.remove(entry_id)

    def cancel(self, key: str) -> bool:
        """Stop what browser session `key` runs now (an ingest, an open, an answer); False if nothing ran."""
        token = self._cancels.get(key)
        if token is None:
            return False
        token.cancel()
        return True

    def _new_cancel(self, key: str) -> CancelToken:
        self._cancels[key] = token = CancelToken()
        return token

    # -- chats ----------------------------------------------------------------------------------------
    def open(self, key: str, path: str | Path, progress=None):
        token = self._new_cancel(key)
        with self.lock:
            chat = self.app.open_video(path, progress=progress, cancel=token)
        return self._keep(key, chat)

    def open_entry(self, key: str, entry_id: str, progress=None):
        """A library entry as it was stored (its sampling and preset): loaded from the cache."""
        with self.lock:
            chat = self.app.open_entry(entry_id, progress=progress)
        return self._keep(key, chat)

    def resume(self, key: str, session_id: str | None, progress=None):
        if not session_id:
            raise SessionError("pick a session first")
        with self.lock:
            chat = self.app.resume(session_id, progress=progress)
        return self._keep(key, chat)

    def chat(self, key: str, state: dict, progress=None):
        """This browser session's chat: the one in memory if it still matches `state`, else reopened."""
        chat = self._chats.get(key)
        if (chat is not None and chat.app is self.app and state.get("video") == str(chat.video.path)
                and state.get("session_id") in (None, chat.session_id)):
            self._chats.move_to_end(key)
            return chat
        if state.get("session_id"):
            return self.resume(key, state["session_id"], progress)
        if state.get("video"):
            return self.open(key, state["video"], progress)
        raise OmniVideoError("open a video first: add one in the Library tab, or resume a session")

    def ask(self, chat, question: str, key: str | None = None) -> Iterator[str]:
        """Stream `chat`'s answer; `cancel(key)` ends it after the current token (the turn keeps what was said)."""
        params = SamplingParams(max_new_tokens=self.max_new_tokens)
        stop = self._new_cancel(key) if key is not None else None
        with self.lock:
            yield from chat.ask(question, params, stop=stop)

    def turn_results(self, session_id: str | None) -> list[dict | None]:
        """Each stored turn's figures (`AnswerResult.as_dict()` as the session kept it), for its details line."""
        if not session_id or self.app.store is None:
            return []
        messages = self.app.store.get_session(session_id)["messages"]
        return [(m.get("meta") or {}).get("result") for m in messages if m.get("role") == "assistant"]

    def _keep(self, key: str, chat):
        self.access.allow(chat.video.path)
        self._chats[key] = chat
        self._chats.move_to_end(key)
        while len(self._chats) > self.max_open_chats:
            self._chats.popitem(last=False)   # its KV is freed with it; the store still has the prefix
        return chat

    # -- what the player and the strip show ----------------------------------------------------------
    def player_path(self, video) -> str:
        """The file the player gets: the video itself, or its browser-playable copy (made once)."""
        return str(self.playback.playable(video.path))

    def strip(self, video) -> tuple[list[tuple[np.ndarray, str]], list[float]]:
        """Thumbnails spread over `video` with their times: ([(RGB uint8 [H, W, 3], 'mm:ss')], [seconds])."""
        path = str(video.path)
        if path not in self._strips:
            count = max(2, min(STRIP_FRAMES, len(video.timestamps_s)) // 2 * 2)
            cfg = SamplingConfig.of(nframes=count, min_pixels=VIDEO_MIN_PIXELS, max_pixels=VIDEO_MIN_PIXELS)
            sampled = sample_video(path, cfg)
            times = [round(float(t), 3) for t in sampled.timestamps_s]
            precise = len(times) > 1 and (times[-1] - times[0]) / (len(times) - 1) < 2.0
            self._strips[path] = ([(f, frame_caption(t, precise)) for f, t in zip(sampled.frames, times)], times)
            while len(self._strips) > 8:
                self._strips.popitem(last=False)
        return self._strips[path]
