"""The Chat tab: the player beside the chat, the strip of sampled frames, per-answer details, sessions.

Answers stream piece by piece; their `[mm:ss]` citations become links that seek the player, and a
click on a frame of the strip seeks it too (omnivideo/ui/player.py). Sessions are listed and resumable.

    view = build_chat()                        # inside a gr.Tab
    act = wire_chat(ws, view, tabs)            # act.open_entry serves the Library's "Open in chat"
"""
import time
from contextlib import closing
from dataclasses import dataclass

import gradio as gr

from omnivideo.ui.citations import linkify
from omnivideo.ui.messages import error_text
from omnivideo.ui.player import PLAYER_ID, SEEK_JS
from omnivideo.ui.progress import StageProgress
from omnivideo.ui.summaries import SESSION_HEADERS, answer_details, session_choices, session_rows, video_status
from omnivideo.ui.workspace import empty_state


@dataclass
class ChatView:
    video_line: gr.Markdown
    player: gr.Video
    strip: gr.Gallery
    times: gr.State
    seek_to: gr.Number
    chatbot: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    details: gr.Markdown
    state: gr.State
    sessions: gr.Dataframe
    session: gr.Dropdown
    resume: gr.Button

    @property
    def opened(self) -> list:
        """What opening a video (or resuming a session) fills."""
        return [self.video_line, self.player, self.strip, self.times, self.chatbot, self.details, self.state]


def build_chat() -> ChatView:
    """The Chat tab's components (call inside a `gr.Tab`)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            video_line = gr.Markdown("No video open: add one in the **Library** tab, or resume a session below.",
                                     elem_id="video-line")
            player = gr.Video(label="Video", elem_id=PLAYER_ID, interactive=False, height=360)
            strip = gr.Gallery(label="Sampled frames (click to seek)", elem_id="strip", columns=6, height=330,
                               fit_columns=False, allow_preview=False, object_fit="contain", interactive=False)
        with gr.Column(scale=6):
            chatbot = gr.Chatbot(elem_id="chat", label="Chat", height=460, buttons=["copy"])
            with gr.Row():
                message = gr.Textbox(label="Message", placeholder="Ask about the video…", scale=5,
                                     elem_id="message", submit_btn=False)
                send = gr.Button("Send", variant="primary", scale=1, min_width=80)
            details = gr.Markdown(elem_id="details")
    with gr.Accordion("Sessions", open=True):
        sessions = gr.Dataframe(headers=SESSION_HEADERS, interactive=False, wrap=True, elem_id="sessions")
        with gr.Row():
            session = gr.Dropdown(label="Session", choices=[], scale=4)
            resume = gr.Button("Resume", scale=1)
    times = gr.State([])
    seek_to = gr.Number(visible=False)
    state = gr.State(empty_state())
    return ChatView(video_line, player, strip, times, seek_to, chatbot, message, send, details, state,
                    sessions, session, resume)


def history_of(chat) -> list[dict]:
    """The chatbot messages of a chat's turns (citations linked)."""
    out = []
    for question, answer in chat.turns:
        out += [{"role": "user", "content": question},
                {"role": "assistant", "content": linkify(answer, chat.video.duration_s)}]
    return out


def state_of(chat) -> dict:
    return {"video": str(chat.video.path), "session_id": chat.session_id}


class ChatActions:
    """The tab's event handlers (methods, so Gradio sees their `gr.Request` / `gr.Progress` parameters)."""

    def __init__(self, ws):
        self.ws = ws

    def sessions(self, selected: str | None = None):
        """(table rows, session dropdown update) from the store."""
        items, now = self.ws.sessions(), time.time()
        ids = [it["id"] for it in items]
        return session_rows(items, now), gr.update(choices=session_choices(items, now),
                                                   value=selected if selected in ids else None)

    def _opened(self, chat, tabs_value):
        frames, times = self.ws.strip(chat.video)
        return (video_status(chat.video), self.ws.player_path(chat.video), frames, times, history_of(chat), "",
                state_of(chat), tabs_value)

    def _failed(self, e, path=None):
        text = error_text(e, oom_hint=lambda: self.ws.oom_hint(path))
        gr.Warning(text)
        return (f"⚠️ {text}", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())

    def open_entry(self, entry_id, request: gr.Request, progress=gr.Progress()):
        """Open a library video in the chat tab (switching to it); outputs: ChatView.opened + tabs."""
        path = None
        try:
            path = self.ws.entry(entry_id)["video_path"]
            bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
            chat = self.ws.open_entry(request.session_hash, entry_id, progress=bar)
            return self._opened(chat, gr.Tabs(selected="chat"))
        except Exception as e:  # the UI boundary
            return self._failed(e, path)

    def resume(self, session_id, request: gr.Request, progress=gr.Progress()):
        try:
            bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
            chat = self.ws.resume(request.session_hash, session_id, progress=bar)
            return self._opened(chat, gr.skip())
        except Exception as e:  # the UI boundary
            return self._failed(e)

    def respond(self, message, history, state, request: gr.Request, progress=gr.Progress()):
        """Stream the answer; yields (chatbot, message box, details, state, sessions table, session dropdown)."""
        question = (message or "").strip()
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        history = list(history or []) + [{"role": "user", "content": question},
                                         {"role": "assistant", "content": "…"}]
        yield history, "", "", gr.skip(), gr.skip(), gr.skip()
        try:
            bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
            chat = self.ws.chat(request.session_hash, state or empty_state(), progress=bar)
            text = ""
            # closing(): if the page goes away mid-answer, Gradio closes this generator, and the
            # inner one (which holds the model lock) is closed with it.
            with closing(self.ws.ask(chat, question)) as pieces:
                for piece in pieces:
                    text += piece
                    history[-1] = {"role": "assistant", "content": linkify(text, chat.video.duration_s)}
                    yield history, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        except Exception as e:  # the UI boundary: the error is the answer; the chat keeps working
            failure = error_text(e, oom_hint=lambda: self.ws.oom_hint((state or {}).get("video")))
            gr.Warning(failure)
            history[-1] = {"role": "assistant", "content": f"⚠️ {failure}"}
            yield history, question, gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        details = answer_details(chat.last.as_dict())
        history[-1] = {"role": "assistant", "content": (linkify(text, chat.video.duration_s) or "(empty answer)")
                       + f'\n\n<span class="ov-details">{details}</span>'}
        yield (history, gr.skip(), details, state_of(chat), *self.sessions(chat.session_id))

    @staticmethod
    def frame_time(times: list[float], evt: gr.SelectData) -> float:
        return float(times[evt.index]) if times and evt.index is not None else 0.0


def wire_chat(ws, view: ChatView, tabs: gr.Tabs) -> ChatActions:
    act = ChatActions(ws)
    streamed = [view.chatbot, view.message, view.details, view.state, view.sessions, view.session]
    inputs = [view.message, view.chatbot, view.state]
    view.message.submit(act.respond, inputs, streamed, api_name="ask")
    view.send.click(act.respond, inputs, streamed, api_name=False)
    view.resume.click(act.resume, view.session, [*view.opened, tabs])
    view.strip.select(act.frame_time, view.times, view.seek_to, queue=False).then(
        None, view.seek_to, None, js=SEEK_JS)
    return act

