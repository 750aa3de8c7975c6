"""Shared builders for the storage tests: keys, KV layers, and child processes running real stores."""
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from omnivideo.storage import FORMAT_VERSION, CacheKey

REPO = Path(__file__).resolve().parents[2]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


KEY_FIELDS = dict(
    video_sha256=sha("video"), sampling={"fps": 2.0, "max_frames": 64}, model_id="tiny", model_revision="r1",
    quantization="none", dtype="float32", prefix_tokens_sha256=sha("prefix"), attention_preset="dense",
    kernel_version="1", engine={"chunk_size": 4096}, stack={"torch": "2.13.0", "device": "cpu"},
)


# one changed value per key field: each must give a different digest
CHANGED = {
    "video_sha256": sha("other video"),
    "sampling": {"fps": 1.0, "max_frames": 64},
    "model_id": "Qwen/Qwen2.5-VL-7B-Instruct",
    "model_revision": "r2",
    "quantization": "nf4",
    "dtype": "bfloat16",
    "prefix_tokens_sha256": sha("other prefix"),
    "attention_preset": "omnisparse",
    "kernel_version": "2",
    "engine": {"chunk_size": 2048},
    "stack": {"torch": "2.13.0", "device": "NVIDIA H200"},
    "format_version": FORMAT_VERSION + 1,
}


def make_key(**overrides) -> CacheKey:
    return CacheKey(**{**KEY_FIELDS, **overrides})


def make_layers(num_layers: int = 3, heads: int = 2, tokens: int = 37, head_dim: int = 16,
                dtype: torch.dtype = torch.float32, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[(k, v)] per layer, each [heads, tokens, head_dim]."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(heads, tokens, head_dim, generator=g).to(dtype),
             torch.randn(heads, tokens, head_dim, generator=g).to(dtype)) for _ in range(num_layers)]


def assert_layers_equal(entry, layers) -> None:
    assert entry.num_layers == len(layers)
    for i, ((k, v), (k0, v0)) in enumerate(zip(entry.iter_layers(), layers, strict=True)):
        assert k.dtype == k0.dtype and torch.equal(k, k0), f"layer {i} K differs"
        assert v.dtype == v0.dtype and torch.equal(v, v0), f"layer {i} V differs"


def run_child(code: str, *args: str, timeout: float = 120, **popen) -> subprocess.Popen:
    """Start `python -c code args...` with the repo importable; `code` may use KEY_FIELDS via make_key()."""
    prelude = f"import sys; sys.path[:0] = [{str(REPO)!r}, {str(Path(__file__).parent)!r}]\n"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-c", prelude + textwrap.dedent(code), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def child_result(proc: subprocess.Popen, timeout: float = 120) -> dict:
    """Wait for a child that prints one JSON line last; its parsed dict (fails with the child's stderr)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"child exited {proc.returncode}:\n{err}"
    return json.loads(out.strip().splitlines()[-1])
