"""Application configuration: where data lives, which model, which attention preset.

Each subsystem gets its own frozen sub-config (sampling of frames, engine, load options); the
app builds them from one `AppConfig`.

    cfg = AppConfig(data_dir=default_data_dir(), model="tiny", attention="balanced")
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

from omnivideo.errors import ConfigError
from omnivideo.app.models import DEFAULT_MODEL
from omnivideo.engine.fused.fp8_linear import PREFILL_LINEARS

ATTENTION_PRESETS = ("dense", "balanced", "fast")


def default_data_dir() -> Path:
    """$OMNIVIDEO_HOME, else $XDG_DATA_HOME/omnivideo, else ~/.local/share/omnivideo."""
    if os.environ.get("OMNIVIDEO_HOME"):
        return Path(os.environ["OMNIVIDEO_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "omnivideo"


@dataclass(frozen=True, slots=True)
class AppConfig:
    data_dir: Path = field(default_factory=default_data_dir)
    model: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    quant: str = "auto"
    attention: str = "dense"
    fps: float | None = 2.0
    max_frames: int | None = None
    total_pixels: int | None = None         # pixel budget over all frames (None: qwen-vl-utils default)
    chunk_size: int = 4096
    sparse_min_keys: int = 4096             # shorter prefixes (and chunks) prefill dense
    cache_budget_bytes: int | None = None   # disk budget of the KV store; None = unlimited
    gamma_decode: float = 1.0               # decode-time KV kept per head (mechanism 3); 1 = all, exact
    gpu_memory_gb: float | None = None      # GPU memory budget (enforced); None = the whole GPU
    prefill_linears: str = "bf16"           # the video prefill's linears: bf16, or fp8 (FP8 tensor cores)

    def __post_init__(self):
        if self.attention not in ATTENTION_PRESETS:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTION_PRESETS)}, got {self.attention!r}")
        if self.fps is not None and not 0 < self.fps <= 60:
            raise ConfigError(f"fps must be in (0, 60], got {self.fps}")
        if self.cache_budget_bytes is not None and self.cache_budget_bytes <= 0:
            raise ConfigError(f"cache budget must be positive, got {self.cache_budget_bytes} bytes")
        if not 0 < self.gamma_decode <= 1:
            raise ConfigError(f"gamma-decode must be in (0, 1], got {self.gamma_decode}")
        if self.gpu_memory_gb is not None and not self.gpu_memory_gb > 0:
            raise ConfigError(f"gpu-memory must be a positive number of GB, got {self.gpu_memory_gb}")
        if self.total_pixels is not None and self.total_pixels < 2 * 28 * 28:
            raise ConfigError(f"total-pixels must be at least {2 * 28 * 28} (two 28x28 frames), got {self.total_pixels}")
        if self.prefill_linears not in PREFILL_LINEARS:
            raise ConfigError(f"prefill-linears must be one of {', '.join(PREFILL_LINEARS)}, got {self.prefill_linears!r}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ConfigError(f"max-frames must be >= 2 (frames come in pairs), got {self.max_frames}")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"
