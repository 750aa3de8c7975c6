"""Settings of the running app (model, fps / max frames, attention preset, answer length) and their tab.

Settings are per server, like the model in memory: applying them rebuilds the app (see
`Workspace.apply`), and open chats reopen with them at their next question. A wrong value is
refused beside its field before anything is applied (`check_form`), and the form keeps what was typed.

    Settings(model="tiny", fps=1.0, max_frames=64, attention="balanced", max_new_tokens=128)
"""
from dataclasses import dataclass, replace

import gradio as gr

from omnivideo.app.config import ATTENTION_PRESETS, AppConfig
from omnivideo.errors import ConfigError
from omnivideo.ui.messages import error_notice, notice

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
        model = gr.Textbox(label="Model", value=current.model, info="Hub id, local checkpoint dir, or 'tiny'",
                           elem_id="model")
        attention = gr.Radio(list(ATTENTION_PRESETS), value=current.attention, label="Attention preset",
                             info="dense = exact; balanced / fast = OmniSparse prefill (gamma 0.95 / 0.9): "
                             "faster ingest where attention is sparse, no memory saved")
    with gr.Row():
        # no minimum / maximum on the numbers: Gradio would refuse an out-of-range value before any
        # handler runs and put an error over every output; `check_form` says what is wrong at the field
        fps = gr.Number(label="Frames per second", value=current.fps, info="more than 0, at most 60")
        max_frames = gr.Number(label="Max frames (0 = model default)", value=current.max_frames or 0, precision=0,
                               info="0, or at least 2")
        max_new_tokens = gr.Slider(1, MAX_NEW_TOKENS_LIMIT, value=current.max_new_tokens, step=1,
                                   label="Max new tokens per answer", elem_id="answer-length")
    apply = gr.Button("Apply settings", variant="primary")
    status = gr.Markdown(elem_id="settings-status")
    return SettingsView(model, fps, max_frames, attention, max_new_tokens, apply, status)


def _refusal(build) -> str | None:
    """The ConfigError message `build()` raises (the CLI's wording); None when it passes."""
    try:
        build()
    except ConfigError as e:
        return str(e)
    return None


def form_problems(config: AppConfig, model, fps, max_frames, attention, max_new_tokens) -> list[str | None]:
    """Per field of the form, what is wrong with it (None: fine), by the app's own rules: each value
    is tried in a copy of the running `config` (AppConfig checks fps and max frames) or in Settings."""
    def settings(**changed):
        values = dict(model="tiny", fps=1.0, max_frames=None, attention=ATTENTION_PRESETS[0], max_new_tokens=1)
        return Settings(**(values | changed))

    frames = int(max_frames) if max_frames else None
    return [
        _refusal(lambda: settings(model=(model or "").strip())),
        "fps is required (frames sampled per second of video)" if fps is None
        else _refusal(lambda: replace(config, fps=float(fps))),
        _refusal(lambda: replace(config, max_frames=frames)),
        _refusal(lambda: settings(attention=attention)),
        "max new tokens is required" if max_new_tokens is None
        else _refusal(lambda: settings(max_new_tokens=int(max_new_tokens))),
    ]


def check_form(ws, *values) -> list:
    """The Apply button's validator: a message beside each wrong field, the typed values left as they are."""
    return [gr.validate(problem is None, problem or "") for problem in form_problems(ws.app.config, *values)]


def apply_settings(ws, model, fps, max_frames, attention, max_new_tokens) -> tuple:
    """Apply the form; returns (status, *form values as applied). A refusal keeps what was typed."""
    try:
        status = ws.apply(Settings.from_form(model, fps, max_frames, attention, max_new_tokens))
    except Exception as e:  # the UI boundary: show it, keep the running settings and the user's input
        return (error_notice(e), *[gr.skip()] * 5)
    return (notice(status, "ok"), *form_values(ws.settings()))


def wire_settings(ws, view: SettingsView) -> None:
    view.apply.click(lambda *a: apply_settings(ws, *a), view.fields, [view.status, *view.fields],
                     api_name="apply_settings", validator=lambda *a: check_form(ws, *a))
