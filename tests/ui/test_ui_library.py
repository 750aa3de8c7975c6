"""The Library tab's handlers over a real App (tiny model, real store, real clips): add, re-ingest,
remove; what a failed add leaves (the table and the entry untouched, the user's file name, no kept
junk); the source check beside the fields."""
import gradio as gr
from ui_testkit import clips, ws  # noqa: F401  (pytest fixtures)

from omnivideo.ui.library import BOTH_CHOSEN, NOTHING_CHOSEN, PLAN_HINT, LibraryActions, check_source
from omnivideo.ui.settings import Settings

SKIP = gr.skip()


def _add(act, upload, path, request):
    """Every update `add_video` streams: (first, last); each is (status, plan, upload, table, entry,
    Cancel, Add, next step, added entry)."""
    steps = list(act.add_video(upload, path, request))
    return steps[0], steps[-1]


def _upload(tmp_path, ws, name: str, data: bytes):
    """A file as Gradio hands an upload over: in its own folder under the upload dir."""
    up = ws.access.upload_dir / "3f2a" / name
    up.parent.mkdir(parents=True, exist_ok=True)
    up.write_bytes(data)
    return up


def test_library_add_reingest_remove(ws, clips, tmp_path):
    act, request = LibraryActions(ws), gr.Request(session_hash="tab")
    upload = _upload(tmp_path, ws, "match.mp4", clips[1].read_bytes())
    first, last = _add(act, str(upload), "", request)
    # while it runs: Cancel on, Add off, the status empty (the one progress bar draws there)
    assert first[0] == "" and first[5]["interactive"] is True and first[6]["interactive"] is False
    status, plan, _, rows, entry, cancel, add, next_step, added = last
    assert 'class="ov-notice ov-ok"' in status and "Added **match.mp4**" in status and "visual tokens" in plan
    assert cancel["interactive"] is False and add["interactive"] is True
    kept = ws.access.videos_dir / "match.mp4"
    assert kept.read_bytes() == upload.read_bytes() and ws.access.allows(kept)
    assert rows[0][0] == "match.mp4" and entry["value"] == added == ws.library()[0]["entry_id"]
    assert next_step == {"__type__": "update", "visible": True, "value": "Open match.mp4 in chat →"}
    *_, (status, *_, added_again) = act.add_video(str(upload), "", request)
    assert "already in the library" in status and "ov-info" in status and added_again == added
    assert len(ws.library()) == 1

    ws.apply(Settings(model="tiny", fps=1.0, max_frames=None, attention="dense", max_new_tokens=4))
    *_, (status, rows, entry, *_) = act.reingest(entry["value"], request)
    assert "Added **match.mp4**" in status and len(rows) == 2
    status, rows, entry, next_step, added = act.remove(entry["value"])
    assert "Removed match.mp4" in status and len(rows) == 1 and next_step["visible"] is False and added is None
    assert "Error: library entry no-such- is gone (removed?)" in act.remove("no-such-entry")[0]


def test_a_failed_add_changes_nothing_but_the_status(ws, clips, tmp_path):
    act, request = LibraryActions(ws), gr.Request(session_hash="tab")
    _add(act, None, str(clips[0]), request)
    # a path that is not there: an error notice naming it; the table, the entry and the next step untouched
    _, (status, plan, upload, rows, entry, cancel, add, next_step, added) = _add(
        act, None, str(tmp_path / "missing.mp4"), request)
    assert 'class="ov-notice ov-error"' in status and "Error: video not found" in status
    assert (rows, entry, next_step, added) == (SKIP, SKIP, SKIP, SKIP) and plan == PLAN_HINT
    assert cancel["interactive"] is False and add["interactive"] is True
    # an upload that is not a video: named as the user named it, and nothing of it is kept anywhere
    junk = _upload(tmp_path, ws, "notes.mp4", b"this is not a video\n" * 50)
    _, (status, plan, upload, rows, *_) = _add(act, str(junk), "", request)
    assert "notes.mp4: cannot open as a video" in status and str(junk.parent) not in status
    assert upload is None and rows == SKIP                       # the upload box is cleared
    assert not junk.exists() and not (ws.access.videos_dir / "notes.mp4").exists()
    assert [it["video_path"] for it in ws.library()] == [str(clips[0])]


def test_a_cancelled_upload_is_not_kept(ws, clips, tmp_path):
    act = LibraryActions(ws)
    upload = _upload(tmp_path, ws, "talk.mp4", clips[1].read_bytes())
    # the progress sink the page would draw with; here the user presses Cancel at its first report
    press_cancel = lambda fraction, desc=None: ws.cancel("tab")  # noqa: E731
    *_, (status, *_) = act.add_video(str(upload), "", gr.Request(session_hash="tab"), progress=press_cancel)
    assert "Cancelled." in status and "ov-info" in status
    assert not (ws.access.videos_dir / "talk.mp4").exists() and ws.library() == []


def test_estimate_names_the_user_file_and_drops_a_bad_upload(ws, clips, tmp_path):
    act = LibraryActions(ws)
    plan, status, next_step, upload = act.estimate(None, f"  {clips[0]}  ")   # what Enter in the path box runs
    assert "**a.mp4**" in plan and "visual tokens" in plan and status == "" and upload == SKIP
    junk = _upload(tmp_path, ws, "holiday.mp4", b"\x00" * 4096)
    plan, _, _, upload = act.estimate(str(junk), "")
    assert "holiday.mp4" in plan and "ov-error" in plan and str(junk.parent) not in plan
    assert upload is None and not junk.exists()
    assert act.cleared() == (PLAN_HINT, "", {"__type__": "update", "visible": False})


def test_check_source_says_what_is_missing_beside_the_fields(clips):
    def messages(upload, path):
        return [(v["is_valid"], v["message"]) for v in check_source(upload, path)]
    assert messages(None, "  ") == [(False, NOTHING_CHOSEN), (True, BOTH_CHOSEN)]
    assert messages(str(clips[0]), "/other.mp4") == [(True, NOTHING_CHOSEN), (False, BOTH_CHOSEN)]
    assert messages(str(clips[0]), "") == [(True, NOTHING_CHOSEN), (True, BOTH_CHOSEN)]
    assert messages(None, "/some/video.mp4") == [(True, NOTHING_CHOSEN), (True, BOTH_CHOSEN)]
