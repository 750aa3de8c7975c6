"""Test-wide setup: Triton interpreter on CPU, device selection, shared fixtures and helpers.

TRITON_INTERPRET must be set before any module that defines a kernel is imported: this file is
loaded by pytest before the test modules, so it is the one place that does it.
"""
import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
requires_gpu = pytest.mark.skipif(DEVICE == "cpu", reason="needs a CUDA GPU (bf16 / real-speed paths)")


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped on machines without CUDA."""
    if DEVICE == "cuda":
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def assert_close(name: str, actual: torch.Tensor, expected: torch.Tensor, rel_rms: float, atol: float | None = None):
    """Relative RMS error check that prints max abs / rel RMS on failure (fla / nanochat style)."""
    a, e = actual.double(), expected.double()
    assert a.shape == e.shape, f"{name}: shape {tuple(a.shape)} != {tuple(e.shape)}"
    assert torch.isfinite(a).all(), f"{name}: non-finite values in actual"
    diff = (a - e).abs()
    rms = diff.pow(2).mean().sqrt() / e.pow(2).mean().sqrt().clamp_min(1e-12)
    msg = f"{name}: max abs {diff.max().item():.3e}, rel rms {rms.item():.3e} (limit {rel_rms:.1e})"
    assert rms.item() <= rel_rms, msg
    if atol is not None:
        assert diff.max().item() <= atol, msg


def capture_graph(fn):
    """(CUDA graph, output) of fn(): warmed up once on a side stream first (Triton compiles, cuBLAS and
    bitsandbytes set up there, not inside the capture). The output tensors are the graph's static ones."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


# -- shared fixtures ----------------------------------------------------------------------------------
from pathlib import Path  # noqa: E402


@pytest.fixture
def triton_kernels():
    """Run the Triton kernels where the engine would pick their references (CPU: the interpreter, fp32/fp16).
    Modules that test a kernel inside the engine use it: `pytestmark = pytest.mark.usefixtures("triton_kernels")`."""
    from omnivideo.kernels import backend

    with backend("triton"):
        yield


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One OmniVideo data dir for the session (the tiny checkpoint is built into it once)."""
    return tmp_path_factory.mktemp("omnivideo-data")


@pytest.fixture(scope="session")
def tiny(data_dir):
    """The tiny Qwen2.5-VL, built offline and loaded through `from_pretrained` (fp32, CPU or GPU)."""
    from omnivideo.engine.loading import LoadOptions, load_model

    return load_model(LoadOptions(model="tiny", models_dir=data_dir / "models", dtype="float32", quant="none"))


@pytest.fixture(scope="session")
def tiny_qwen3_vl(data_dir):
    """The tiny Qwen3-VL (DeepStack, GQA 4), built offline and loaded through `from_pretrained` (fp32)."""
    from omnivideo.engine.loading import LoadOptions, load_model

    return load_model(LoadOptions(model="tiny-qwen3-vl", models_dir=data_dir / "models", dtype="float32",
                                  quant="none"))


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


def make_clip(path: Path, seconds: float = 3.0, fps: float = 10.0, size=(160, 120), seed: int = 0,
              fourcc: str = "mp4v") -> Path:
    """A short synthetic clip written by OpenCV: moving shapes over a seeded background."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert vw.isOpened(), f"OpenCV cannot write {fourcc} to {path}"
    for i in range(int(seconds * fps)):
        img = base.copy()
        x = int((i * 7 + seed * 13) % max(1, w - 20))
        cv2.rectangle(img, (x, h // 3), (x + 20, h // 3 + 20), (255, 255 - 20 * seed % 255, 0), -1)
        cv2.putText(img, str(i), (5, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
        vw.write(img)
    vw.release()
    return path


@pytest.fixture(scope="session")
def clips(clip_dir) -> list[Path]:
    """Three different short videos (sizes, lengths and content differ)."""
    return [make_clip(clip_dir / "a.mp4", 3.0, 10.0, (160, 120), 0),
            make_clip(clip_dir / "b.mp4", 4.0, 8.0, (200, 112), 1),
            make_clip(clip_dir / "c.avi", 2.5, 12.0, (128, 128), 2, fourcc="MJPG")]
