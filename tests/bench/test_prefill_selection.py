"""`bench prefill-selection` on a real capture (tiny model, generated clip): engine chunking and the report."""
import json

import pytest

from cli_runner import run_cli
from conftest import make_clip
from omnivideo.bench.capture import CaptureConfig, capture
from omnivideo.bench.prefill.selection import PRESETS, VARIANTS, SelectionConfig


@pytest.fixture(scope="module")
def captured(tiny, tmp_path_factory):
    base = tmp_path_factory.mktemp("selection")
    clip = make_clip(base / "clip.mp4", seconds=4.0, fps=8.0, size=(224, 168), seed=5)
    out = base / "qk.safetensors"
    capture(clip, out, loaded=tiny, config=CaptureConfig(layers=(0, 1)))
    return out


def test_selection_replays_the_engine_chunks_and_marks_dense_layers(captured, tmp_path):
    """Random weights: flat attention, so every estimated chunk falls back; such a layer is dense (n/a), its
    recall of 1 is not reported as met."""
    out = run_cli("bench", "prefill-selection", captured, "--out", tmp_path, "--chunk", "64", "--rows", "16",
                  "--min-keys", "128")
    assert out.exit_code == 0, out.stderr
    result = json.loads((tmp_path / "selection.json").read_text())
    rows = result["rows"]
    assert len(rows) == len(PRESETS) * len(VARIANTS) * 2
    n = result["capture"]["tokens"]
    chunks = -(-n // 64)
    for r in rows:
        assert r["chunks_estimated"] == chunks - 1            # the first chunk has 64 < 128 keys: dense
        assert r["fallbacks"] == r["chunks_estimated"] and not r["sparse_layer"]
        assert r["density"] == 1.0 and r["lazy_share"] is None
    table = (tmp_path / "selection.md").read_text()
    assert table.count("n/a | n/a") == len(rows)


def test_selection_config_is_validated():
    with pytest.raises(ValueError):
        SelectionConfig(chunk=100)
    with pytest.raises(ValueError):
        SelectionConfig(variants=("nope",))
