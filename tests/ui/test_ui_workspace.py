"""The page's handlers over a real App (tiny model, real store, real H.264 clips): open, stream, evict and
reopen, cancel, errors as messages, settings, library add/re-ingest/remove."""
import gradio as gr
import pytest
from ui_testkit import make_h264

from omnivideo.app.app import App
from omnivideo.app.config import AppConfig
from omnivideo.errors import CacheError, ConfigError, OmniVideoError, VideoCancelled, VideoError
from omnivideo.ui.chat import ChatActions, state_of
from omnivideo.ui.library import LibraryActions
from omnivideo.ui.messages import error_text
from omnivideo.ui.progress import StageProgress
from omnivideo.ui.access import FileAccess
from omnivideo.ui.settings import Settings
from omnivideo.ui.workspace import Workspace, empty_state


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return make_h264(d / "a.mp4", seconds=4), make_h264(d / "b.mp4", seconds=3, size="160x120")


@pytest.fixture
def ws(tmp_path, tiny, data_dir):
    # the session's tiny checkpoint (built once by the `tiny` fixture), a fresh store per test
    (tmp_path / "models").symlink_to(data_dir / "models", target_is_directory=True)
    workspace = Workspace(App(AppConfig(data_dir=tmp_path, model="tiny", fps=2.0)), FileAccess(tmp_path),
                          max_open_chats=1, max_new_tokens=8)
    yield workspace
    workspace.app.close()


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
    assert error_text(MemoryError(), oom_hint=lambda: ws.oom_hint(text_file)).startswith("Out of memory: try fewer")
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


@pytest.mark.filterwarnings("ignore:Error. open a video first:UserWarning")  # gr.Warning outside a page
def test_chat_respond_streams_and_reports(ws, clips):
    act, request = ChatActions(ws), gr.Request(session_hash="tab")
    out = list(act.respond("Hi?", [], empty_state(), request))
    assert out[-1][0][-1]["content"].startswith("⚠️ Error: open a video first")

    opened = ws.open("tab", clips[0])
    steps = list(act.respond("What is shown?", [], state_of(opened), request))
    histories = [s[0] for s in steps if isinstance(s[0], list)]
    assert len(histories) >= 3                                   # placeholder, pieces..., final
    final_history, _, details, state = steps[-1][:4]
    assert final_history[0] == {"role": "user", "content": "What is shown?"}
    # opened by this chat (not ingested before): a miss, and the first TTFT includes the ingest
    assert 'class="ov-details">cache miss (video ingested) · TTFT' in final_history[1]["content"]
    assert details.startswith("cache miss (video ingested) · TTFT") and "attention dense" in details
    assert state == {"video": str(clips[0]), "session_id": opened.session_id}


def test_a_page_leaving_mid_answer_frees_the_model(ws, clips):
    chat = ws.open("tab", clips[1])
    steps = ChatActions(ws).respond("Tell me everything.", [], state_of(chat), gr.Request(session_hash="tab"))
    next(steps), next(steps)                                     # the placeholder, then the first piece
    assert ws.lock.locked()                                      # generating
    steps.close()                                                # what Gradio does when the page goes away
    assert not ws.lock.locked()
    assert list(ws.ask(chat, "Still there?"))                    # the model is usable again


def test_library_add_reingest_remove(ws, clips, tmp_path):
    act, request = LibraryActions(ws), gr.Request(session_hash="tab")
    upload = tmp_path / "upload" / "match.mp4"
    upload.parent.mkdir()
    upload.write_bytes(clips[1].read_bytes())
    status, plan, rows, entry = act.add_video(str(upload), "", request)
    assert status.startswith("Added **match.mp4**") and "visual tokens" in plan
    kept = ws.access.videos_dir / "match.mp4"
    assert kept.read_bytes() == upload.read_bytes() and ws.access.allows(kept)
    assert rows[0][0] == "match.mp4" and entry["value"] == ws.library()[0]["entry_id"]
    status, *_ = act.add_video(str(upload), "", request)
    assert "already in the library" in status and len(ws.library()) == 1

    ws.apply(Settings(model="tiny", fps=1.0, max_frames=None, attention="dense", max_new_tokens=4))
    status, rows, entry = act.reingest(entry["value"], request)
    assert status.startswith("Added **match.mp4**") and len(rows) == 2
    status, rows, entry = act.remove(entry["value"])
    assert status.startswith("Removed match.mp4") and len(rows) == 1
    assert act.remove("no-such-entry")[0] == "Error: library entry no-such- is gone (removed?)"
    assert act.add_video(None, str(tmp_path / "missing.mp4"), request)[0].startswith("Error: video not found")


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
