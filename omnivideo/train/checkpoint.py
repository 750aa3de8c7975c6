"""Resumable training state: model, optimizer, scheduler, RNG states, step and history, written atomically.

`state.pt` holds everything a resumed run needs to continue bit-exactly (on the same device type):
the fp32 weights, AdamW moments, the LR schedule's position, torch's CPU (and CUDA) RNG states and the
loss history. Samples are a pure function of their index (omnivideo.train.sample), so the data
stream needs no state of its own: step s always trains on the same videos.

    save_state(out / "state.pt", model=..., optimizer=..., scheduler=..., step=120, history=[...])
    state = load_state(out / "state.pt")
"""
import os
import random
from pathlib import Path

import numpy as np
import torch

from omnivideo.errors import ConfigError

STATE_NAME = "state.pt"
STATE_VERSION = 1


def rng_state() -> dict:
    out = {"torch": torch.random.get_rng_state(), "python": random.getstate(),
           "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict) -> None:
    torch.random.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: str | os.PathLike, *, model, optimizer, scheduler, step: int, history: list,
               config: dict, extra: dict | None = None) -> Path:
    """Write the state to `path` atomically (temp file, fsync, rename): a crash leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": STATE_VERSION, "step": step, "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": rng_state(),
               "history": history, "config": config, "extra": extra or {}}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_state(path: str | os.PathLike, map_location="cpu") -> dict:
    """The saved state; a ConfigError (one line) when it is missing or not ours."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_NAME
    if not path.is_file():
        raise ConfigError(f"no training state at {path} (nothing to resume or initialise from)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except (OSError, RuntimeError, EOFError) as e:
        raise ConfigError(f"could not read training state {path}: {e}") from e
    if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
        raise ConfigError(f"{path} is not an omnivideo training state (version {STATE_VERSION})")
    return state


def init_weights(path: str | os.PathLike) -> dict:
    """The model weights a run starts from: a training state (a run dir or its state.pt), or an exported
    checkpoint directory (`model/`, or the shipped omnivideo/checkpoints/synth/: bf16 safetensors, which
    load_state_dict casts to the training dtype; training-only heads then start fresh)."""
    path = Path(path)
    if not (path.is_dir() and not (path / STATE_NAME).exists() and any(path.glob("*.safetensors"))):
        return load_state(path)["model"]
    # through from_pretrained: it maps the saved key names (transformers renames some on save) back
    from transformers import Qwen2_5_VLForConditionalGeneration

    try:
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=torch.float32).state_dict()
    except (OSError, ValueError) as e:
        raise ConfigError(f"could not read the checkpoint at {path}: {e}") from e
