"""The workspace over a real App (tiny model, real store, real H.264 clips): open, stream, evict and
reopen, cancel, errors as messages, settings (and their per-field checks), stored entries, the strip."""
import pytest
from ui_testkit import clips, ws  # noqa: F401  (pytest fixtures)

from omnivideo.errors import CacheError, ConfigError, OmniVideoError, VideoCancelled, VideoError
from omnivideo.ui.chat import state_of
from omnivideo.ui.messages import error_text
from omnivideo.ui.progress import StageProgress
from omnivideo.ui.settings import Settings, form_problems
from omnivideo.ui.workspace import empty_state


def test_open_ask_evict_and_reopen(ws, clips):
    a, b = clips
    stages = StageProgress(lambda fraction, text: None)
    chat = ws.open("tab-1", a, progress=stages)
    assert {"decode", "vision", "prefill", "store"} <= set(stages.stages_seen) and "load" not in stages.stages_seen
    pieces = list(ws.ask(chat, "What happens?"))
    assert len(pieces) >= 1 and "".join(pieces) == chat.turns[0][1]
    assert chat.session_id and ws.access.allows(a)
    state = state_of(chat)
    assert ws.chat("tab-1", state) is chat                      # still in memory

    ws.open("tab-2", b)                                          # max_open_chats=1: tab-1's chat is dropped
    again = ws.chat("tab-1", state)
    assert again is not chat and again.session_id == chat.session_id
    assert again.turns == chat.turns and again.video.cache_hit   # resumed from the store
    list(ws.ask(again, "And then?"))
    assert len(again.turns) == 2
    assert [s["num_messages"] for s in ws.sessions() if s["id"] == chat.session_id] == [4]


def test_cancel_then_the_app_keeps_working(ws, clips):
    a, _ = clips
    with pytest.raises(VideoCancelled) as info:
        ws.ingest("tab", a, progress=lambda done, total, stage: ws.cancel("tab"))
    assert error_text(info.value) == "Cancelled."
    assert ws.library() == []
    opened = ws.ingest("tab", a)
    assert not opened.cache_hit and [it["entry_id"] for it in ws.library()] == [opened.entry_id]
    assert ws.cancel("nobody") is False


def test_errors_become_messages(ws, clips, tmp_path):
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("this is not a video\n" * 50)
    with pytest.raises(VideoError) as info:
        ws.plan(text_file)
    assert error_text(info.value).startswith("Error: ")
    with pytest.raises(OmniVideoError, match="open a video first"):
        ws.chat("tab", empty_state())
    oom = error_text(MemoryError(), oom_hint=lambda: ws.oom_hint(clips[0]))
    assert oom.startswith("Out of memory: the planner estimated ") and "visual tokens" in oom
    assert "preset" not in oom                       # the attention presets lower no memory
    assert error_text(MemoryError(), oom_hint=lambda: ws.oom_hint(text_file)).startswith("Out of memory: fewer visual tokens")
    assert error_text(RuntimeError("boom")) == "Internal error: RuntimeError: boom (details in the server log)"


def test_settings_rebuild_the_app(ws, clips):
    ws.open("tab", clips[1])
    first = ws.app
    assert ws.apply(ws.settings()) == "Settings applied." and ws.app is first
    message = ws.apply(Settings(model="tiny", fps=1.0, max_frames=8, attention="fast", max_new_tokens=4))
    assert "reopen" in message and ws.app is not first
    assert (ws.app.config.fps, ws.app.config.max_frames, ws.app.config.attention) == (1.0, 8, "fast")
    assert ws.settings() == Settings(model="tiny", fps=1.0, max_frames=8, attention="fast", max_new_tokens=4)
    with pytest.raises(ConfigError):
        Settings(model="tiny", fps=1.0, max_frames=None, attention="sparse")
    with pytest.raises(ConfigError):
        Settings.from_form("tiny", None, 0, "dense", 16)
    with pytest.raises(ConfigError, match="fps"):
        ws.apply(Settings(model="tiny", fps=100.0, max_frames=None, attention="dense"))
    assert ws.app.config.fps == 1.0                              # a refused change keeps the running app


def test_settings_form_is_checked_field_by_field(ws):
    """What the Apply button's validator says beside each field, by the app's own rules."""
    config = ws.app.config
    assert form_problems(config, "tiny", 2.0, 0, "dense", 256) == [None] * 5
    assert form_problems(config, "tiny", 1.5, 16, "fast", 4096) == [None] * 5
    model, fps, frames, attention, tokens = form_problems(config, " ", 0, 1, "sparse", 0)
    assert model.startswith("the model must be") and fps == "fps must be in (0, 60], got 0.0"
    assert frames.startswith("max-frames must be >= 2") and attention.startswith("attention must be one of")
    assert tokens == "max new tokens must be in 1..4096, got 0"
    assert form_problems(config, "tiny", None, None, "dense", None)[1::3] == [
        "fps is required (frames sampled per second of video)", "max new tokens is required"]
    too_much = form_problems(config, "tiny", 61, -4, "dense", 5000)
    assert too_much[0] is None and all(too_much[i] for i in (1, 2, 4))


def test_library_lists_stored_figures_and_opens_entries_as_stored(ws, clips):
    opened = ws.open("tab", clips[0]).video                      # ingested at 2 fps (the defaults)
    (item,) = ws.library()
    assert item["duration_s"] == pytest.approx(opened.duration_s) and item["num_visual_tokens"] == opened.visual_tokens
    assert item["num_frames"] == len(opened.timestamps_s) and item["num_tokens"] == opened.prefix_tokens
    # other settings now: opening the entry still uses the ones it was stored with (a hit, no new entry)
    ws.apply(Settings(model="tiny", fps=1.0, max_frames=None, attention="fast", max_new_tokens=4))
    chat = ws.open_entry("tab", item["entry_id"])
    assert chat.video.cache_hit and chat.video.visual_tokens == opened.visual_tokens and len(ws.library()) == 1
    assert list(ws.ask(chat, "Again?"))
    ws.remove(item["entry_id"])
    with pytest.raises(CacheError, match="no cache entry matches"):
        ws.open_entry("tab", item["entry_id"])


def test_strip_thumbnails(ws, clips):
    chat = ws.open("tab", clips[0])
    frames, times = ws.strip(chat.video)
    assert len(frames) == len(times) == min(12, len(chat.video.timestamps_s))
    assert times == sorted(times) and times[0] < 0.5 and times[-1] > 3.0
    image, caption = frames[1]
    assert image.ndim == 3 and image.shape[2] == 3 and caption == f"00:00.{round(times[1] * 10) % 10}"
