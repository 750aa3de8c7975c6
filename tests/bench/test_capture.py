"""`bench capture` on the tiny model and a real generated clip: shapes, equality with the engine's
cache, and the kernel-level prefill bench running on the captured file."""
import json

import pytest
import torch
from safetensors import safe_open

from conftest import make_clip
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prompt import ChatFormat
from cli_runner import run_cli
from omnivideo.bench.capture import CaptureConfig, capture, load_qk
from omnivideo.errors import ConfigError
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("capture") / "clip.mp4", seconds=4.0, fps=8.0, size=(224, 168), seed=5)


@pytest.fixture(scope="module")
def captured(tiny, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("qk") / "qk.safetensors"
    meta = capture(clip, out, loaded=tiny, config=CaptureConfig(layers=(1,), kv_heads=1, max_tokens=200))
    return out, meta


def _engine_cache(tiny, clip):
    vis = tiny.vision_config
    inputs = to_model_inputs(sample_video(clip, SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    prefix = ChatFormat(tiny.tokenizer).prefix_ids(inputs.num_visual_tokens)
    return Engine(tiny, EngineConfig()).ingest(prefix, inputs), prefix


def test_capture_writes_the_selected_layers_heads_and_tokens(tiny, captured):
    out, meta = captured
    tc = tiny.text_config
    d = tc.hidden_size // tc.num_attention_heads
    g = tc.num_attention_heads // tc.num_key_value_heads
    assert meta["prefix_tokens"] > 200 and meta["tokens"] == 200 and meta["layers"] == [1]
    with safe_open(str(out), framework="pt") as f:
        assert set(f.keys()) == {"layer1.q", "layer1.k", "layer1.v", "text_mask", "video_grid_thw"}
        assert f.get_tensor("layer1.q").shape == (g, 200, d)
        assert f.get_tensor("layer1.k").shape == f.get_tensor("layer1.v").shape == (1, 200, d)
        assert json.loads(f.metadata()["model"]) == tiny.model_id


def test_captured_k_and_v_equal_the_engine_cache_and_text_mask_marks_text(tiny, clip, captured):
    out, _ = captured
    qk = load_qk(out)
    conv, prefix = _engine_cache(tiny, clip)
    k_cache, v_cache = conv.cache.layer_kv(1, 200)
    q, k, v = qk.layers[1]
    assert torch.equal(k, k_cache[:1].cpu()) and torch.equal(v, v_cache[:1].cpu())
    video_id = tiny.model.config.video_token_id
    assert qk.text_mask.tolist() == [t != video_id for t in prefix[:200]]
    assert qk.text_mask.any() and not qk.text_mask.all()


def test_whole_prefix_capture_spans_every_chunk(tiny, clip, tmp_path):
    """Default layers (first, middle, last) and the whole prefix; K of the last layer matches the cache."""
    meta = capture(clip, tmp_path / "all.safetensors", loaded=tiny)
    qk = load_qk(tmp_path / "all.safetensors")
    conv, prefix = _engine_cache(tiny, clip)
    assert meta["layers"] == [0, 1] and meta["tokens"] == len(prefix)
    assert torch.equal(qk.layers[0][1], conv.cache.layer_kv(0)[0].cpu())
    assert qk.layers[0][0].shape[0] == tiny.text_config.num_attention_heads


def test_prefill_bench_runs_on_the_capture(captured, tmp_path):
    from omnivideo.bench.prefill.kernels import run_kernel_bench

    out, _ = captured
    result = run_kernel_bench(out_dir=tmp_path, small=True, qk=out)
    assert result["workload"].startswith("captured")
    assert [e["layer"] for e in result["fidelity"]] == [1, 1]       # balanced, fast
    assert all(e["tokens"] == 200 for e in result["fidelity"])
    (row,) = result["kernel"]
    assert row["length"] == 200 and row["points"]
    assert "captured" in (tmp_path / "report.md").read_text()


def test_bad_inputs_are_named_errors(tmp_path, clip):
    with pytest.raises(ConfigError):
        load_qk(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError):
        CaptureConfig(kv_heads=0)
    result = run_cli("bench", "capture", tmp_path / "none.mp4", "--out", tmp_path / "x.safetensors")
    assert result.exit_code == 2 and result.stderr.startswith("error:") and "none.mp4" in result.stderr
