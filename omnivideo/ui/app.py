"""The OmniVideo page: Library, Chat, Sessions and Settings tabs over one `omnivideo.app.App`.

No model, storage or video logic here: every action calls the app through a `Workspace`. The
Sessions tab sits between Chat and Settings, so past chats are one click away at any window height.

    demo = build_demo(App(AppConfig(model="tiny")))
    demo.launch()                    # or omnivideo.ui.server.launch(app, options): host/auth/allowed paths
"""
import gradio as gr

from omnivideo.app.app import App
from omnivideo.ui.access import FileAccess
from omnivideo.ui.chat import build_chat, wire_chat
from omnivideo.ui.library import build_library, wire_library
from omnivideo.ui.player import INSTALL_SEEK_JS
from omnivideo.ui.sessions import build_sessions, wire_sessions
from omnivideo.ui.settings import build_settings, form_values, wire_settings
from omnivideo.ui.workspace import Workspace


def build_demo(app: App, access: FileAccess | None = None, *, max_new_tokens: int = 256) -> gr.Blocks:
    """The whole page; `access` (default: the app's data dir) grows as videos are added."""
    ws = Workspace(app, access or FileAccess(app.config.data_dir), max_new_tokens=max_new_tokens)
    with gr.Blocks(title="OmniVideo") as demo:
        gr.Markdown("# OmniVideo\nAsk about long local videos. Answers cite times as **[mm:ss]**: "
                    "click one, or a frame under the player, to jump there.")
        with gr.Tabs(selected="library") as tabs:
            with gr.Tab("Library", id="library"):
                library = build_library()
            with gr.Tab("Chat", id="chat"):
                chat = build_chat()
            with gr.Tab("Sessions", id="sessions") as sessions_tab:
                sessions = build_sessions()
            with gr.Tab("Settings", id="settings"):
                settings = build_settings(ws.settings())
        chat_act = wire_chat(ws, chat)
        opened = [*chat.opened, tabs]
        library_act = wire_library(ws, library, (chat_act.open_entry, opened))
        sessions_act = wire_sessions(ws, sessions, sessions_tab, (chat_act.resume, opened))
        wire_settings(ws, settings)

        def on_load():
            # every page load shows the store as it is now (another tab, or before a restart, changed it)
            return (*library_act.refresh(), *sessions_act.refresh(), *form_values(ws.settings()))

        demo.load(on_load, None, [library.table, library.entry, *sessions.listing, *settings.fields])
        demo.load(None, None, None, js=INSTALL_SEEK_JS)
    demo.workspace = ws  # for tests and the server: the state behind the page
    return demo
