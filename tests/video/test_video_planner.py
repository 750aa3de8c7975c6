"""The planner: token and byte figures, the fit verdict and a suggestion that really fits."""
import json
import re

import pytest
import torch
from video_corpus import corpus  # noqa: F401  (session fixture)

from omnivideo.errors import ConfigError
from omnivideo.app.models import footprint_for
from omnivideo.app.video import SamplingConfig, VideoInfo, plan_memory, plan_sampling, probe_report
from omnivideo.app.video.planner import TEXT_TOKENS, decode_kv_share, fit_warning

GIB = 1 << 30
MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
HOUR = VideoInfo("lecture.mp4", 3600.0, 30.0, 108000, 1920, 1080, "h264")


def test_kv_bytes_are_tokens_times_56_kib_for_the_7b_model():
    plan = plan_sampling(HOUR, SamplingConfig())
    memory = plan_memory(plan, MODEL, "dense", gpu_memory_bytes=None)
    assert memory.kv_bytes_per_token == 56 * 1024  # docs/method.md: 56 KiB of bf16 KV per token
    assert memory.kv_bytes == (plan.visual_tokens + TEXT_TOKENS) * 56 * 1024
    parts = memory.weights_bytes + memory.kv_bytes + memory.activation_bytes + memory.runtime_bytes
    assert memory.gpu_estimate_bytes == parts
    assert memory.fits is None and memory.warning is None  # no GPU given: no verdict


def test_fit_verdict_follows_the_gpu_size():
    plan = plan_sampling(HOUR, SamplingConfig())
    assert plan_memory(plan, MODEL, "dense", 80 * GIB).fits is True
    assert plan_memory(plan, MODEL, "dense", 12 * GIB).fits is False


def test_attention_presets_change_no_memory_figure_and_gamma_decode_shrinks_only_the_decode_kv():
    plan = plan_sampling(HOUR, SamplingConfig())
    dense, balanced, fast = (plan_memory(plan, MODEL, a, 24 * GIB) for a in ("dense", "balanced", "fast"))
    assert dense == balanced == fast                         # prefill presets: ingest keeps all KV, decode too
    slim = plan_memory(plan, MODEL, "dense", 24 * GIB, gamma_decode=0.95)
    assert slim.gpu_estimate_bytes == dense.gpu_estimate_bytes and slim.decode_kv_bytes < dense.decode_kv_bytes
    per_token, text = dense.kv_bytes_per_token, TEXT_TOKENS * dense.kv_bytes_per_token
    # the measured share at 0.95 (docs/benchmarks/slimming: 0.728 on synth, 0.747 structured; the larger)
    assert slim.decode_kv_bytes - text == int(plan.visual_tokens * per_token * 0.747)
    assert dense.decode_kv_bytes - text == plan.visual_tokens * per_token


def test_decode_share_follows_the_measured_points():
    assert decode_kv_share(1.0) == 1.0 and decode_kv_share(0.5) == decode_kv_share(0.8) == 0.45
    assert decode_kv_share(0.925) == pytest.approx((0.607 + 0.747) / 2)
    with pytest.raises(ConfigError, match="gamma_decode"):
        decode_kv_share(0.0)


@pytest.mark.parametrize("gpu_gib", [10, 12, 14])
def test_suggested_max_frames_fits_and_is_the_largest_that_does(gpu_gib):
    cfg = SamplingConfig()
    memory = plan_memory(plan_sampling(HOUR, cfg), MODEL, "dense", gpu_gib * GIB)
    assert memory.fits is False
    warning = fit_warning(HOUR, cfg, MODEL, "dense", memory)
    frames = int(re.search(r"--max-frames (\d+)", warning).group(1))
    fps = float(re.search(r"--fps ([\d.]+)", warning).group(1))

    def fits(c):
        return plan_memory(plan_sampling(HOUR, c), MODEL, "dense", gpu_gib * GIB).fits

    assert fits(SamplingConfig(max_frames=frames))
    assert not fits(SamplingConfig(max_frames=frames + 2))
    assert fits(SamplingConfig(fps=fps))


def test_a_model_too_big_for_the_gpu_says_so():
    cfg = SamplingConfig()
    memory = plan_memory(plan_sampling(HOUR, cfg), "Qwen/Qwen2.5-VL-72B-Instruct", "dense", 24 * GIB)
    assert "smaller model" in fit_warning(HOUR, cfg, "Qwen/Qwen2.5-VL-72B-Instruct", "dense", memory)


def test_unknown_model_and_preset():
    plan = plan_sampling(HOUR, SamplingConfig())
    memory = plan_memory(plan, "/models/my-finetune", "dense", 24 * GIB)
    assert memory.kv_bytes is None and memory.fits is None and "no known size" in memory.warning
    with pytest.raises(ConfigError, match="attention"):
        plan_memory(plan, MODEL, "turbo", None)


def test_probe_report_is_the_probe_json_object(corpus):
    report = probe_report(corpus.clips["h264"].path, SamplingConfig(fps=1.0), model=MODEL, attention="balanced")
    json.dumps(report)  # plain JSON types only
    for key in ("duration_s", "fps", "frame_count", "width", "height", "codec", "sampled", "visual_tokens",
                "kv_bytes", "gpu_estimate_bytes", "gpu_memory_bytes", "fits", "warning"):
        assert key in report, key
    sampled = report["sampled"]
    assert sampled["count"] == len(sampled["timestamps_s"]) == 6
    assert set(sampled) == {"count", "timestamps_s", "resized_height", "resized_width"}
    fp = footprint_for(MODEL)
    assert report["kv_bytes"] == (report["visual_tokens"] + TEXT_TOKENS) * fp.kv_bytes_per_token
    if not torch.cuda.is_available():
        assert report["gpu_memory_bytes"] is None and report["fits"] is None


def test_probe_report_warns_with_a_given_small_gpu(corpus):
    report = probe_report(corpus.clips["long"].path, SamplingConfig(fps=2.0), model=MODEL, gpu_memory_bytes=12 * GIB)
    assert report["fits"] is False and "--max-frames" in report["warning"]


def test_a_local_checkpoint_is_sized_from_its_config(tmp_path):
    from omnivideo.bench.random_model import FULL_VISION, QWEN25_VL_7B_TEXT

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl", "text_config": QWEN25_VL_7B_TEXT,
                                                      "vision_config": FULL_VISION}))
    mine, table = footprint_for(str(tmp_path)), footprint_for(MODEL)
    assert mine.kv_bytes_per_token == table.kv_bytes_per_token
    for name in ("params_body", "params_embed", "params_vision"):
        assert getattr(mine, name) == pytest.approx(getattr(table, name), rel=0.04), name
    assert footprint_for(str(tmp_path / "nothing-here")) is None


@pytest.mark.parametrize("gpu_gib, placement", [(80, "gpu"), (12, "host"), (4, "none")])
def test_the_plan_says_where_the_kv_will_live(gpu_gib, placement):
    memory = plan_memory(plan_sampling(HOUR, SamplingConfig()), MODEL, "dense", gpu_gib * GIB)
    assert memory.kv_placement == placement
    if placement == "host":
        assert "stays in host memory" in fit_warning(HOUR, SamplingConfig(), MODEL, "dense", memory)
