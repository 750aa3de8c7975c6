"""Settings of the running app (model, fps / max frames, attention preset, answer length) and their tab.

Settings are per server, like the model in memory: applying them rebuilds the app (see
`Workspace.apply`), and open chats reopen with them at their next question.

    Settings(model="tiny", fps=1.0, max_frames=64, attention="balanced", max_new_tokens=128)
"""
from dataclasses import dataclass

import gradio as gr

from omnivideo.app.config import ATTENTION_PRESETS
from omnivideo.errors import ConfigError
from omnivideo.ui.messages import error_text

MAX_NEW_TOKENS_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class Settings:
    model: str
    fps: float
    max_frames: int | None
    attention: str
    max_new_tokens: int = 256

    def __post_init__(self):
        if not self.model.strip():
            raise ConfigError("the model must be a hub id, a local checkpoint dir, or 'tiny'")
        if self.attention not in ATTENTION_PRESETS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTION_PRESETS)}, got {self.attention!r}")
        if not 1 <= self.max_new_tokens <= MAX_NEW_TOKENS_LIMIT:
            raise ConfigError(f"max new tokens must be in 1..{MAX_NEW_TOKENS_LIMIT}, got {self.max_new_tokens}")

    @classmethod
    def from_form(cls, model: str, fps: float | None, max_frames: float | None, attention: str,
                  max_new_tokens: float) -> "Settings":
        """Form values -> Settings; an empty or 0 max frames means no limit beyond the model's."""
        if fps is None:
            raise ConfigError("fps is required (frames sampled per second of video)")
        frames = int(max_frames) if max_frames else None
        return cls(model=(model or "").strip(), fps=float(fps), max_frames=frames, attention=attention,
                   max_new_tokens=int(max_new_tokens))


@dataclass
class SettingsView:
    model: gr.Textbox
    fps: gr.Number
    max_frames: gr.Number
    attention: gr.Radio
    max_new_tokens: gr.Slider
    apply: gr.Button
    status: gr.Markdown

    @property
    def fields(self) -> list:
        return [self.model, self.fps, self.max_frames, self.attention, self.max_new_tokens]


def form_values(s: Settings) -> list:
    return [s.model, s.fps, s.max_frames or 0, s.attention, s.max_new_tokens]


def build_settings(current: Settings) -> SettingsView:
    """The Settings tab's components (call inside a `gr.Tab`)."""
    gr.Markdown("Applies to the next ingest and the next question. Changing the model reloads it; "
                "changing sampling or attention makes a new cache entry (the old one stays in the library).")
    with gr.Row():
        model = gr.Textbox(label="Model", value=current.model, info="Hub id, local checkpoint dir, or 'tiny'")
        attention = gr.Radio(list(ATTENTION_PRESETS), value=current.attention, label="Attention preset",
                             info="dense = exact; balanced / fast = OmniSparse prefill (gamma 0.95 / 0.9)")
    with gr.Row():
        fps = gr.Number(label="Frames per second", value=current.fps, minimum=0.01, maximum=60)
        max_frames = gr.Number(label="Max frames (0 = model default)", value=current.max_frames or 0,
                               minimum=0, precision=0)
        max_new_tokens = gr.Slider(1, 1024, value=current.max_new_tokens, step=1, label="Max new tokens per answer")
    apply = gr.Button("Apply settings", variant="primary")
    status = gr.Markdown(elem_id="settings-status")
    return SettingsView(model, fps, max_frames, attention, max_new_tokens, apply, status)


def apply_settings(ws, model, fps, max_frames, attention, max_new_tokens) -> tuple:
    """Apply the form; returns (status, *form values as applied)."""
    try:
        status = ws.apply(Settings.from_form(model, fps, max_frames, attention, max_new_tokens))
    except Exception as e:  # the UI boundary: show it, keep the old settings
        gr.Warning(error_text(e))
        return (error_text(e), *form_values(ws.settings()))
    return (status, *form_values(ws.settings()))


def wire_settings(ws, view: SettingsView) -> None:
    view.apply.click(lambda *a: apply_settings(ws, *a), view.fields, [view.status, *view.fields],
                     api_name="apply_settings")
