"""The Library tab: the ingested videos; add (upload or local path) with the planner's estimate first,
progress per stage and a Cancel button; remove; re-ingest with the current settings.

The source is checked before anything runs (`check_source`): nothing chosen, or an upload and a path
at once, is said beside the fields, and the table and the entry list stay as they are. Enter in the
path box estimates, like the Estimate button and an upload. Each action replaces the status line
(a green, red or neutral notice); progress is drawn once, on that line. After an add the next step
is offered: a button that opens the new video in the chat. Cancel, Open, Re-ingest and Remove are
enabled only when they have something to act on; a click on a table row picks that entry.

    view = build_library()                                   # inside a gr.Tab
    wire_library(ws, view, (open_entry, open_outputs))       # "Open in chat" fills the chat tab
"""
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from omnivideo.ui.messages import error_notice, notice
from omnivideo.ui.progress import StageProgress
from omnivideo.ui.summaries import LIBRARY_HEADERS, library_choices, library_rows, plan_summary
from omnivideo.ui.uploads import discard, keep_upload_once

PLAN_HINT = "The planner's estimate appears here before you add a video."
NOTHING_CHOSEN = "Choose a video: upload one, or type the path of a video file on this machine below."
BOTH_CHOSEN = "A file is uploaded as well: remove the upload (×) to use this path, or clear this box."


@dataclass
class LibraryView:
    upload: gr.File
    local_path: gr.Textbox
    check: gr.Button
    add: gr.Button
    cancel: gr.Button
    plan: gr.Markdown
    status: gr.Markdown
    open_added: gr.Button
    added: gr.State
    table: gr.Dataframe
    entry: gr.Dropdown
    open: gr.Button
    reingest: gr.Button
    remove: gr.Button

    @property
    def ingest_outputs(self) -> list:
        """What an add or a re-ingest updates, after its status line."""
        return [self.table, self.entry, self.cancel, self.add, self.open_added, self.added]


def build_library() -> LibraryView:
    """The Library tab's components (call inside a `gr.Tab`)."""
    with gr.Row():
        with gr.Column(scale=3, min_width=300):
            upload = gr.File(label="Upload a video", file_types=["video"], file_count="single", height=140,
                             elem_id="upload")
            local_path = gr.Textbox(label="…or a video file on this machine", placeholder="/path/to/video.mp4",
                                    info="Enter estimates it", elem_id="local-path")
        with gr.Column(scale=4, min_width=300):
            plan = gr.Markdown(PLAN_HINT, elem_id="plan")
            with gr.Row():
                check = gr.Button("Estimate", min_width=100)
                add = gr.Button("Add to library", variant="primary", min_width=100)
                cancel = gr.Button("Cancel", variant="stop", interactive=False, min_width=100)
            status = gr.Markdown(elem_id="library-status")
            open_added = gr.Button("Open in chat", variant="primary", visible=False, elem_id="open-added")
    table = gr.Dataframe(headers=LIBRARY_HEADERS, label="Library (click a row to pick it)", interactive=False,
                         wrap=True, elem_id="library")
    with gr.Row():
        entry = gr.Dropdown(label="Library entry", choices=[], scale=3, min_width=240, elem_id="library-entry")
        open_ = gr.Button("Open in chat", variant="primary", scale=1, interactive=False, min_width=120)
        reingest = gr.Button("Re-ingest with current settings", scale=1, interactive=False, min_width=120)
        remove = gr.Button("Remove", variant="stop", scale=1, interactive=False, min_width=100)
    return LibraryView(upload, local_path, check, add, cancel, plan, status, open_added, gr.State(None), table,
                       entry, open_, reingest, remove)


def _chosen(text) -> bool:
    return bool(text and text.strip())


def check_source(upload, local_path) -> list:
    """Validator of Estimate / Enter / upload / Add: one source, or a message beside the fields."""
    both = bool(upload) and _chosen(local_path)
    return [gr.validate(bool(upload) or _chosen(local_path), NOTHING_CHOSEN), gr.validate(not both, BOTH_CHOSEN)]


def _source(upload, local_path) -> Path | None:
    if upload:
        return Path(upload)
    if _chosen(local_path):
        return Path(local_path.strip()).expanduser()
    return None


def _named(text: str, *paths: Path | None) -> str:
    """`text` with the server-side path of an upload (a temp folder, the kept copy) shown as its file name."""
    for p in paths:
        if p is not None:
            text = text.replace(str(p), p.name)
    return text


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

    def estimate(self, upload, local_path):
        """The planner's estimate; returns (plan, status, next-step button, upload). A file that is not a
        video is refused by its name, and an upload of one is dropped (the box and the server's copy)."""
        path = _source(upload, local_path)
        if path is None:
            return PLAN_HINT, "", gr.update(visible=False), gr.skip()
        try:
            return plan_summary(self.ws.plan(path)), "", gr.update(visible=False), gr.skip()
        except Exception as e:  # the UI boundary: a bad file is a message, not a crash
            if upload:
                discard(path, self.ws.access.upload_dir)
            return (_named(error_notice(e), path if upload else None), "", gr.update(visible=False),
                    None if upload else gr.skip())

    def cleared(self):
        """The upload was removed: forget its estimate and the last status; (plan, status, next step)."""
        return PLAN_HINT, "", gr.update(visible=False)

    @staticmethod
    def _busy(lead: tuple):
        """The first update of an add / re-ingest: `lead` (an empty status: the progress bar draws there),
        Cancel on, Add off until it is over."""
        return (*lead, gr.skip(), gr.skip(), gr.update(interactive=True), gr.update(interactive=False),
                gr.update(visible=False), gr.skip())

    def _ingested(self, lead: tuple, path: Path | None = None, entry_id: str | None = None):
        """The last update: `lead` (the status first), Cancel off, Add on; after a success the table and
        entry (the new one picked) and the "Open ... in chat" button; after a failure the table, the
        entry and the button as they were (nothing changed in the library)."""
        if entry_id is None:
            return (*lead, gr.skip(), gr.skip(), gr.update(interactive=False), gr.update(interactive=True),
                    gr.skip(), gr.skip())
        return (*lead, *self.refresh(entry_id), gr.update(interactive=False), gr.update(interactive=True),
                gr.update(visible=True, value=f"Open {path.name} in chat →"), entry_id)

    def _ingest(self, path: Path, request: gr.Request, progress):
        """(status notice, entry id) of ingesting `path`, the progress on the status line."""
        bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
        t0 = time.perf_counter()
        opened = self.ws.ingest(request.session_hash, path, progress=bar)
        entry_id = opened.entry_id or next((it["entry_id"] for it in self.ws.library()
                                            if it.get("video_path") == str(path)), None)
        figures = f"{len(opened.timestamps_s)} frames, {opened.visual_tokens:,} visual tokens"   # as the estimate says
        if opened.cache_hit:
            return notice(f"**{path.name}** is already in the library with these settings ({figures}).", "info"), entry_id
        return notice(f"Added **{path.name}**: {figures}, in {time.perf_counter() - t0:.1f} s.", "ok"), entry_id

    def add_video(self, upload, local_path, request: gr.Request, progress=gr.Progress()):
        """Ingest the chosen video; yields (status, plan, upload, *ingest_outputs).

        An upload is checked by the planner before it is kept; a kept copy whose ingest fails or is
        cancelled is removed again, so the data dir holds only videos of the library."""
        yield self._busy(("", gr.skip(), gr.skip()))
        source = _source(upload, local_path)
        if source is None:
            yield self._ingested((notice(NOTHING_CHOSEN, "error"), gr.skip(), gr.skip()))
            return
        kept, made, plan = None, False, None
        try:
            plan = plan_summary(self.ws.plan(source))
            path = source
            if upload:
                kept, made = keep_upload_once(source, self.ws.access.videos_dir)
                path = kept
            status, entry_id = self._ingest(path, request, progress)
        except Exception as e:  # the UI boundary
            rejected = upload and plan is None                  # not a video: nothing of it is kept
            if rejected:
                discard(source, self.ws.access.upload_dir)
            if made:
                discard(kept, self.ws.access.videos_dir)
            status = error_notice(e, oom_hint=lambda: self.ws.oom_hint(kept or source))
            status = _named(status, source, kept) if upload else status
            yield self._ingested((status, plan or PLAN_HINT, None if rejected else gr.skip()))
            return
        yield self._ingested((status, plan, gr.skip()), path, entry_id)

    def reingest(self, entry_id, request: gr.Request, progress=gr.Progress()):
        """Ingest a library video again with the current settings; yields (status, *ingest_outputs)."""
        yield self._busy(("",))
        path = None
        try:
            path = Path(self.ws.entry(entry_id)["video_path"])
            status, new_id = self._ingest(path, request, progress)
        except Exception as e:  # the UI boundary
            yield self._ingested((error_notice(e, oom_hint=lambda: self.ws.oom_hint(path)),))
            return
        yield self._ingested((status,), path, new_id)

    def remove(self, entry_id):
        try:
            item = self.ws.entry(entry_id)
            self.ws.remove(entry_id)
            status = notice(f"Removed {Path(item.get('video_path') or '?').name} ({entry_id[:8]}) from the cache.",
                            "info")
        except Exception as e:  # the UI boundary
            status = error_notice(e)
        return (status, *self.refresh(), gr.update(visible=False), None)

    def cancel(self, request: gr.Request) -> str:
        return notice("Cancelling…" if self.ws.cancel(request.session_hash) else "Nothing to cancel.", "info")

    def pick_row(self, evt: gr.SelectData):
        """A click on a table row picks its entry (the row's last cell is the entry id's start)."""
        prefix = str((evt.row_value or [""])[-1])
        ids = [it["entry_id"] for it in self.ws.library() if prefix and it["entry_id"].startswith(prefix)]
        return ids[0] if len(ids) == 1 else gr.skip()

    @staticmethod
    def entry_buttons(entry_id):
        """Open, Re-ingest and Remove act on the picked entry: off while none is picked."""
        return [gr.update(interactive=bool(entry_id))] * 3


def wire_library(ws, view: LibraryView, open_in_chat) -> LibraryActions:
    """Events of the tab; `open_in_chat` is the chat tab's (fn(entry_id, ...), outputs) for "Open in chat"
    (its last output, after those, is this tab's status line)."""
    act = LibraryActions(ws)
    sources = [view.upload, view.local_path]
    estimated = [view.plan, view.status, view.open_added, view.upload]
    for trigger in (view.check.click, view.local_path.submit, view.upload.upload):
        trigger(act.estimate, sources, estimated, validator=check_source, show_progress_on=[view.plan])
    view.upload.clear(act.cleared, None, [view.plan, view.status, view.open_added], queue=False)
    view.add.click(act.add_video, sources, [view.status, view.plan, view.upload, *view.ingest_outputs],
                   api_name="add_video",
                   validator=check_source, show_progress_on=[view.status])
    view.cancel.click(act.cancel, None, view.status, queue=False)
    view.reingest.click(act.reingest, view.entry, [view.status, *view.ingest_outputs], show_progress_on=[view.status])
    view.remove.click(act.remove, view.entry, [view.status, view.table, view.entry, view.open_added, view.added])
    view.table.select(act.pick_row, None, view.entry, queue=False)
    view.entry.change(act.entry_buttons, view.entry, [view.open, view.reingest, view.remove], queue=False)
    fn, outputs = open_in_chat
    view.open.click(fn, view.entry, [*outputs, view.status], show_progress_on=[view.status])
    view.open_added.click(fn, view.added, [*outputs, view.status], show_progress_on=[view.status])
    return act
