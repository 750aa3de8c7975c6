"""The Sessions tab: past chats, newest first, titled by their first question; Resume reopens one.

Resuming reopens the chat's video from the cache and replays its turns token for token
(`App.resume`, through the Chat tab's handler), also after a restart; the chat then shows every
answer with its details line. A click on a row picks that session; Resume is on once one is
picked. The list is read from the store on page load and whenever the tab is shown, so it has
the answers given since.

    view = build_sessions()                                  # inside a gr.Tab
    act = wire_sessions(ws, view, tab, (chat_act.resume, [*chat_view.opened, tabs]))
"""
import time
from dataclasses import dataclass

import gradio as gr

from omnivideo.ui.summaries import SESSION_HEADERS, session_choices, session_rows


@dataclass
class SessionsView:
    table: gr.Dataframe
    ids: gr.State          # the session id of each table row, in the table's order
    session: gr.Dropdown
    resume: gr.Button
    status: gr.Markdown

    @property
    def listing(self) -> list:
        return [self.table, self.session, self.ids]


def build_sessions() -> SessionsView:
    """The Sessions tab's components (call inside a `gr.Tab`)."""
    table = gr.Dataframe(headers=SESSION_HEADERS, label="Sessions (click a row to pick it)", interactive=False,
                         wrap=True, elem_id="sessions")
    with gr.Row():
        session = gr.Dropdown(label="Session", choices=[], scale=4, min_width=240, elem_id="session-pick")
        resume = gr.Button("Resume", variant="primary", scale=1, interactive=False, min_width=100)
    status = gr.Markdown(elem_id="sessions-status")
    return SessionsView(table, gr.State([]), session, resume, status)


class SessionsActions:
    def __init__(self, ws):
        self.ws = ws

    def refresh(self, selected: str | None = None):
        """(table rows, session dropdown update, row ids) from the store; the pick kept if it still exists."""
        items, now = self.ws.sessions(), time.time()
        ids = [it["id"] for it in items]
        return (session_rows(items, now), gr.update(choices=session_choices(items, now),
                                                    value=selected if selected in ids else None), ids)

    @staticmethod
    def pick_row(ids: list[str], evt: gr.SelectData):
        """A click on a table row picks its session."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        return ids[row] if isinstance(row, int) and 0 <= row < len(ids) else gr.skip()

    @staticmethod
    def resume_button(session_id):
        return gr.update(interactive=bool(session_id))


def wire_sessions(ws, view: SessionsView, tab: gr.Tab, resume_in_chat) -> SessionsActions:
    """Events of the tab; `resume_in_chat` is the chat tab's (fn(session_id, ...), outputs) for Resume."""
    act = SessionsActions(ws)
    tab.select(act.refresh, view.session, view.listing, queue=False)
    view.table.select(act.pick_row, view.ids, view.session, queue=False)
    view.session.change(act.resume_button, view.session, view.resume, queue=False)
    fn, outputs = resume_in_chat
    view.resume.click(fn, view.session, [*outputs, view.status], show_progress_on=[view.status])
    return act
