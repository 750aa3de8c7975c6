"""The Library tab: the ingested videos; add (upload or local path) with the planner's estimate first,
progress per stage and a Cancel button; remove; re-ingest with the current settings.

    view = build_library()                 # inside a gr.Tab
    wire_library(ws, view, chat_view)      # "Open in chat" fills the chat tab
"""
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from omnivideo.ui.messages import error_text
from omnivideo.ui.progress import StageProgress
from omnivideo.ui.summaries import LIBRARY_HEADERS, library_choices, library_rows, plan_summary
from omnivideo.ui.uploads import keep_upload


@dataclass
class LibraryView:
    upload: gr.File
    local_path: gr.Textbox
    check: gr.Button
    add: gr.Button
    cancel: gr.Button
    plan: gr.Markdown
    status: gr.Markdown
    table: gr.Dataframe
    entry: gr.Dropdown
    open: gr.Button
    reingest: gr.Button
    remove: gr.Button


def build_library() -> LibraryView:
    """The Library tab's components (call inside a `gr.Tab`)."""
    with gr.Row():
        with gr.Column(scale=3):
            upload = gr.File(label="Upload a video", file_types=["video"], file_count="single", height=140)
            local_path = gr.Textbox(label="…or a video file on this machine", placeholder="/path/to/video.mp4")
        with gr.Column(scale=4):
            plan = gr.Markdown("The planner's estimate appears here before you add a video.", elem_id="plan")
            with gr.Row():
                check = gr.Button("Estimate")
                add = gr.Button("Add to library", variant="primary")
                cancel = gr.Button("Cancel", variant="stop")
            status = gr.Markdown(elem_id="library-status")
    table = gr.Dataframe(headers=LIBRARY_HEADERS, label="Library", interactive=False, wrap=True,
                         elem_id="library")
    with gr.Row():
        entry = gr.Dropdown(label="Library entry", choices=[], scale=3)
        open_ = gr.Button("Open in chat", variant="primary", scale=1)
        reingest = gr.Button("Re-ingest with current settings", scale=1)
        remove = gr.Button("Remove", variant="stop", scale=1)
    return LibraryView(upload, local_path, check, add, cancel, plan, status, table, entry, open_, reingest, remove)


def _source(upload, local_path) -> Path:
    if upload:
        return Path(upload)
    if local_path and local_path.strip():
        return Path(local_path.strip()).expanduser()
    raise gr.Error("Choose a video: upload one or type a path on this machine.")


class LibraryActions:
    """The tab's event handlers (methods, so Gradio sees their `gr.Request` / `gr.Progress` parameters)."""

    def __init__(self, ws):
        self.ws = ws

    def refresh(self, selected: str | None = None):
        """(table rows, entry dropdown update) from the store."""
        items = self.ws.library()
        ids = [it["entry_id"] for it in items]
        value = selected if selected in ids else (ids[0] if ids else None)
        return library_rows(items, time.time()), gr.update(choices=library_choices(items), value=value)

    def estimate(self, upload, local_path) -> str:
        path = _source(upload, local_path)
        try:
            return plan_summary(self.ws.plan(path))
        except Exception as e:  # the UI boundary: a bad file is a message, not a crash
            return error_text(e)

    def _ingest(self, path: Path, request: gr.Request, progress) -> str:
        bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
        t0 = time.perf_counter()
        opened = self.ws.ingest(request.session_hash, path, progress=bar)
        if opened.cache_hit:
            return (f"**{path.name}** is already in the library with these settings "
                    f"({opened.visual_tokens:,} visual tokens).")
        return (f"Added **{path.name}**: {len(opened.timestamps_s)} frames, {opened.visual_tokens:,} visual tokens, "
                f"in {time.perf_counter() - t0:.1f} s (entry {(opened.entry_id or '?')[:8]}).")

    def add_video(self, upload, local_path, request: gr.Request, progress=gr.Progress()):
        """Ingest the chosen video; returns (status, plan, table, entry)."""
        path = _source(upload, local_path)
        plan, selected = gr.skip(), None
        try:
            if upload:
                path = keep_upload(path, self.ws.access.videos_dir)
            plan = plan_summary(self.ws.plan(path))
            status = self._ingest(path, request, progress)
            selected = next((it["entry_id"] for it in self.ws.library() if it.get("video_path") == str(path)), None)
        except Exception as e:  # the UI boundary
            status = error_text(e, oom_hint=lambda: self.ws.oom_hint(path))
        return (status, plan, *self.refresh(selected))

    def reingest(self, entry_id, request: gr.Request, progress=gr.Progress()):
        """Ingest a library video again with the current settings; returns (status, table, entry)."""
        path = None
        try:
            path = Path(self.ws.entry(entry_id)["video_path"])
            status = self._ingest(path, request, progress)
        except Exception as e:  # the UI boundary
            status = error_text(e, oom_hint=lambda: self.ws.oom_hint(path))
        return (status, *self.refresh(entry_id))

    def remove(self, entry_id):
        try:
            item = self.ws.entry(entry_id)
            self.ws.remove(entry_id)
            status = f"Removed {Path(item.get('video_path') or '?').name} ({entry_id[:8]}) from the cache."
        except Exception as e:  # the UI boundary
            status = error_text(e)
        return (status, *self.refresh())

    def cancel(self, request: gr.Request) -> str:
        return "Cancelling…" if self.ws.cancel(request.session_hash) else "Nothing to cancel."


def wire_library(ws, view: LibraryView, open_in_chat) -> LibraryActions:
    """Events of the tab; `open_in_chat` is the chat tab's (fn(entry_id, ...), outputs) for "Open in chat"."""
    act = LibraryActions(ws)
    listing = [view.table, view.entry]
    sources = [view.upload, view.local_path]
    view.check.click(act.estimate, sources, view.plan)
    view.upload.upload(act.estimate, sources, view.plan)
    view.add.click(act.add_video, sources, [view.status, view.plan, *listing], api_name="add_video")
    view.cancel.click(act.cancel, None, view.status, queue=False)
    view.reingest.click(act.reingest, view.entry, [view.status, *listing])
    view.remove.click(act.remove, view.entry, [view.status, *listing])
    fn, outputs = open_in_chat
    view.open.click(fn, view.entry, outputs)
    return act
