"""The Chat tab: the player beside the chat, the strip of sampled frames, per-answer details, sessions.

Answers stream piece by piece. While one streams, the message box and Send are off (a question
typed meanwhile would have nowhere to go) and Stop takes Send's place: it ends the answer after the
current token; the turn keeps what was said and the next question continues from it. `[mm:ss]`
citations become links that seek the player, and so is each frame of the strip (omnivideo/ui/strip.py,
omnivideo/ui/player.py). Every answer ends with its details line, also the answers of a resumed
session. The sessions themselves are listed in their own tab (omnivideo/ui/sessions.py) and reopen here.

    view = build_chat()                        # inside a gr.Tab
    act = wire_chat(ws, view)                  # act.open_entry / act.resume: the Library's and Sessions' buttons
"""
import html
import time
from contextlib import closing
from dataclasses import dataclass

import gradio as gr

from omnivideo.errors import VideoCancelled
from omnivideo.ui.citations import linkify
from omnivideo.ui.messages import error_notice, error_text
from omnivideo.ui.player import PLAYER_ID
from omnivideo.ui.progress import StageProgress
from omnivideo.ui.strip import EMPTY_STRIP, strip_html
from omnivideo.ui.summaries import answer_details, video_status
from omnivideo.ui.workspace import empty_state

PLACEHOLDER = "Ask about the video…"
BUSY_PLACEHOLDER = "Answering… press Stop to end the answer here."
# The answer is redrawn at most this often: a fast model makes hundreds of tokens a second, and a
# redraw per token would keep the server and the browser busy re-sending and re-rendering the
# whole bubble (a Stop click would then wait behind that backlog).
STREAM_INTERVAL_S = 0.05


@dataclass
class ChatView:
    video_line: gr.Markdown
    player: gr.Video
    strip: gr.HTML
    chatbot: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    state: gr.State

    @property
    def opened(self) -> list:
        """What opening a video (or resuming a session) fills."""
        return [self.video_line, self.player, self.strip, self.chatbot, self.state]


def build_chat() -> ChatView:
    """The Chat tab's components (call inside a `gr.Tab`)."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            video_line = gr.Markdown("No video open: add one in the **Library** tab, or resume one in **Sessions**.",
                                     elem_id="video-line")
            player = gr.Video(label="Video", elem_id=PLAYER_ID, interactive=False, height=360)
            strip = gr.HTML(EMPTY_STRIP, elem_id="strip", padding=False)
        with gr.Column(scale=6, min_width=320):
            chatbot = gr.Chatbot(elem_id="chat", label="Chat", height=460, buttons=["copy"])
            with gr.Row(equal_height=True):
                message = gr.Textbox(label="Message", placeholder=PLACEHOLDER, scale=5, elem_id="message",
                                     submit_btn=False, min_width=160)
                send = gr.Button("Send", variant="primary", scale=1, min_width=80, elem_id="send")
                stop = gr.Button("Stop", variant="stop", scale=1, min_width=80, visible=False, elem_id="stop")
    return ChatView(video_line, player, strip, chatbot, message, send, stop, gr.State(empty_state()))


def answer_content(text: str, duration_s: float | None, result: dict | None) -> str:
    """An answer bubble: the text with its citations linked, then its details line (when known)."""
    body = linkify(text, duration_s) or "(empty answer)"
    return body if result is None else body + f'\n\n<span class="ov-details">{answer_details(result)}</span>'


def history_of(chat, results: list[dict | None] = ()) -> list[dict]:
    """The chatbot messages of a chat's turns: citations linked, each answer with its `results` details."""
    out = []
    for i, (question, answer) in enumerate(chat.turns):
        result = results[i] if i < len(results) else None
        out += [{"role": "user", "content": question},
                {"role": "assistant", "content": answer_content(answer, chat.video.duration_s, result)}]
    return out


def state_of(chat) -> dict:
    return {"video": str(chat.video.path), "session_id": chat.session_id}


class ChatActions:
    """The tab's event handlers (methods, so Gradio sees their `gr.Request` / `gr.Progress` parameters)."""

    def __init__(self, ws):
        self.ws = ws

    def _opened(self, chat):
        """(*ChatView.opened, tabs, status) for a chat now open: switch to the chat tab, clear the status."""
        results = self.ws.turn_results(chat.session_id) if chat.turns else []
        return (video_status(chat.video), self.ws.player_path(chat.video), strip_html(*self.ws.strip(chat.video)),
                history_of(chat, results), state_of(chat), gr.Tabs(selected="chat"), "")

    def _failed(self, e, path=None):
        """Nothing opened: the error on the status line of the tab the user is on; the chat as it was."""
        return (*[gr.skip()] * 6, error_notice(e, oom_hint=lambda: self.ws.oom_hint(path)))

    def open_entry(self, entry_id, request: gr.Request, progress=gr.Progress()):
        """Open a library video in the chat tab; outputs: ChatView.opened + tabs + the Library's status."""
        path = None
        try:
            path = self.ws.entry(entry_id)["video_path"]
            bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
            return self._opened(self.ws.open_entry(request.session_hash, entry_id, progress=bar))
        except Exception as e:  # the UI boundary
            return self._failed(e, path)

    def resume(self, session_id, request: gr.Request, progress=gr.Progress()):
        """Reopen a session in the chat tab; outputs: ChatView.opened + tabs + the Sessions' status."""
        try:
            bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
            return self._opened(self.ws.resume(request.session_hash, session_id, progress=bar))
        except Exception as e:  # the UI boundary
            return self._failed(e)

    def respond(self, message, history, state, request: gr.Request, progress=gr.Progress()):
        """Stream the answer; yields (chatbot, message box, Send, Stop, state). `idle` runs after it."""
        question = (message or "").strip()
        if not question:
            yield (gr.skip(),) * 5
            return
        history = list(history or []) + [{"role": "user", "content": question},
                                         {"role": "assistant", "content": "…"}]
        yield (history, gr.update(value="", interactive=False, placeholder=BUSY_PLACEHOLDER),
               gr.update(visible=False), gr.update(visible=True, interactive=True, value="Stop"), gr.skip())
        try:
            bar = StageProgress(lambda fraction, text: progress(fraction, desc=text))
            chat = self.ws.chat(request.session_hash, state or empty_state(), progress=bar)
            text, shown_at = "", 0.0
            # closing(): if the page goes away mid-answer, Gradio closes this generator, and the
            # inner one (which holds the model lock) is closed with it; the turn keeps what was said.
            with closing(self.ws.ask(chat, question, request.session_hash)) as pieces:
                for piece in pieces:
                    text += piece
                    if time.monotonic() - shown_at < STREAM_INTERVAL_S:
                        continue
                    shown_at = time.monotonic()
                    history[-1] = {"role": "assistant", "content": linkify(text, chat.video.duration_s)}
                    yield history, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        except Exception as e:  # the UI boundary: the error is the answer; the question is back in the box
            history[-1] = {"role": "assistant", "content": self._failure(e, state)}
            yield history, gr.update(value=question), gr.skip(), gr.skip(), gr.skip()
            return
        history[-1] = {"role": "assistant", "content": answer_content(text, chat.video.duration_s, chat.last.as_dict())}
        yield history, gr.skip(), gr.skip(), gr.skip(), state_of(chat)

    def _failure(self, e: Exception, state) -> str:
        """The bubble of an answer that never came: Stop while the chat reopened is not an error."""
        if isinstance(e, VideoCancelled):
            return "(stopped before the answer began)"
        failure = error_text(e, oom_hint=lambda: self.ws.oom_hint((state or {}).get("video")))
        return f'<span class="ov-answer-error">⚠ {html.escape(failure)}</span>'

    def stop(self, request: gr.Request):
        """Stop: the answer ends after its current token (the stream then finishes by itself)."""
        self.ws.cancel(request.session_hash)
        return gr.update(interactive=False, value="Stopping…")

    @staticmethod
    def idle():
        """After an answer, however it ended: the box and Send back, Stop away; (message, Send, Stop)."""
        return (gr.update(interactive=True, placeholder=PLACEHOLDER), gr.update(visible=True),
                gr.update(visible=False, interactive=True, value="Stop"))


def wire_chat(ws, view: ChatView) -> ChatActions:
    act = ChatActions(ws)
    streamed = [view.chatbot, view.message, view.send, view.stop, view.state]
    inputs = [view.message, view.chatbot, view.state]
    for trigger, api_name in ((view.message.submit, "ask"), (view.send.click, False)):
        trigger(act.respond, inputs, streamed, api_name=api_name, show_progress_on=[view.chatbot]).then(
            act.idle, None, [view.message, view.send, view.stop], queue=False)
    view.stop.click(act.stop, None, view.stop, queue=False)
    return act
