"""End-to-end prefill bench on CPU (tiny model): its prefill is the engine's, its clock sees every
attention call, and it writes the JSON + report + plot. No timings are asserted."""
import json
from dataclasses import replace

import pytest
import torch

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.bench.random_model import random_model
from omnivideo.bench.prefill.e2e import SMALL, E2EConfig, acceptance, run, variants
from omnivideo.bench.prefill.e2e_timing import (AttentionClock, embed_prefix, encode_video, prefill, prefix_ids,
                                                    synthetic_video)
from omnivideo.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_random():
    return random_model("tiny", torch.device("cpu"), quant="none")


def test_bench_prefill_fills_the_same_cache_as_engine_ingest(tiny_random):
    engine = Engine(tiny_random, EngineConfig(chunk_size=64))
    video = synthetic_video(tiny_random, 96, side=8)
    conv = engine.ingest(prefix_ids(engine, 96), video)
    prefix = embed_prefix(engine, video, encode_video(engine, video))
    cache = prefill(engine, prefix, None, 64)
    assert cache.get_seq_length() == conv.cache.get_seq_length() == 96 + 32
    for i in range(engine.num_layers):
        for ours, theirs in zip(cache.layer_kv(i), conv.cache.layer_kv(i)):
            assert torch.equal(ours, theirs), i


def test_the_clock_sees_every_attention_call_and_can_be_removed(tiny_random):
    engine = Engine(tiny_random, EngineConfig(chunk_size=64))
    video = synthetic_video(tiny_random, 96, side=8)
    prefix = embed_prefix(engine, video, encode_video(engine, video))
    reference = prefill(engine, prefix, None, 64)
    clock = AttentionClock.install(tiny_random)
    try:
        cache = prefill(engine, prefix, None, 64)
    finally:
        AttentionClock.uninstall(tiny_random)
    assert clock.calls == engine.num_layers * 2          # 128 prefix tokens in chunks of 64
    assert clock.total_s() > 0
    assert torch.equal(cache.layer_kv(1)[0], reference.layer_kv(1)[0])   # timing changes nothing
    clock.reset()
    prefill(engine, prefix, None, 64)
    assert clock.calls == 0                               # uninstalled: the plain hook runs again


def test_small_run_writes_json_report_and_plot(tmp_path):
    result = run(replace(SMALL, lengths=(256,)), tmp_path)
    on_disk = json.loads((tmp_path / "e2e.json").read_text())
    assert on_disk["complete"] and on_disk["lengths"][0]["length"] == 256
    assert (tmp_path / "e2e.md").read_text().startswith("# OmniSparse prefill end to end")
    assert (tmp_path / "e2e.png").read_bytes()[:4] == b"\x89PNG"
    (entry,) = result["lengths"]
    names = [v["name"] for v in entry["variants"]]
    assert names == ["dense", "dense-by-chunk", "sparse gamma 0.9"]
    for v in entry["variants"]:
        assert 0 < v["attention_s"] < v["prefill_s"] and v["attention_calls"] == 2 * 3   # layers x chunks
    sparse = entry["variants"][-1]["sparse"]
    assert sparse["calls"] == 2 * 3 and sparse["dense_fallbacks"] == 0 and sparse["mean_density"] < 1


def test_variants_and_targets():
    cfg = E2EConfig()
    names = [v["name"] for v in variants(cfg, 32768, True, {"workload oracle": 0.46})]
    assert names == ["dense", "dense-by-chunk", "sparse@25%", "sparse@46%"]
    assert [v["name"] for v in variants(cfg, 65536, False, {"workload oracle": 0.46})] == ["dense", "dense-by-chunk", "sparse@15%"]
    dense = {"name": "dense", "prefill_s": 3.0, "attention_s": 1.0, "linear_s": 2.0}
    sparse = {"name": "sparse@25%", "prefill_s": 2.5, "attention_s": 0.5, "linear_s": 2.0,
              "sparse": {"mean_density": 0.25}}
    (t,) = acceptance([{"length": 32768, "vision_s": 1.0, "variants": [dense, sparse]}])
    assert t["value"] == pytest.approx(1.2) and not t["met"] and t["short_by"] == pytest.approx(1 - 1.2 / 1.3)
    assert t["pro_rata_bound"] == pytest.approx(3.0 / 2.25) and t["with_vision"] == pytest.approx(4.0 / 3.5)
    with pytest.raises(ConfigError):
        E2EConfig(lengths=(1000,))


def test_report_keeps_failed_variants_and_backends_visible(tmp_path):
    from omnivideo.bench.prefill.e2e_report import report_markdown, write_e2e_report

    ok = {"name": "dense", "why": "baseline", "prefill_s": 2.0, "attention_s": 0.5, "linear_s": 1.5, "peak_gb": 9.0}
    failed = {"name": "sparse@25%", "why": "issue target", "density": 0.25, "error": "RuntimeError: out of memory"}
    result = {"config": {"full_vision": True, "chunk_size": 4096, "block_size": 64, "window": 512, "repeats": 2},
              "device": "gpu", "versions": {"torch": "t", "transformers": "x", "triton": "y"},
              "model": {"id": "m", "quantization": "nf4"}, "complete": False, "acceptance": acceptance([]),
              "dense_layer": [{"length": 32768, "error": "boom"}],
              "lengths": [{"length": 32768, "prefix_tokens": 32800, "vision_s": 1.0, "variants": [ok, failed],
                           "flops": {"linear": 1e15, "attention": 1e14}}]}
    text = report_markdown(result)
    assert "failed: RuntimeError: out of memory" in text and "failed: boom" in text and "Partial run" in text
    sparse = {**ok, "name": "sparse@25%", "prefill_s": 1.8, "attention_s": 0.3, "sparse": {"mean_density": 0.25}}
    result["acceptance"] = acceptance([{**result["lengths"][0], "variants": [ok, sparse]}])
    assert "1.11x, 15% short of 1.3x" in report_markdown(result)   # bound 2 / 1.625 = 1.23 < 1.3: linear-bound
    write_e2e_report(result, tmp_path)
    assert (tmp_path / "e2e.png").read_bytes()[:4] == b"\x89PNG"


def test_nf4_dequantization_pass_is_timed_only_for_nf4_models(tiny_random):
    from omnivideo.bench.prefill.e2e_timing import nf4_dequant_s

    assert nf4_dequant_s(tiny_random) is None
    assert nf4_dequant_s(random_model("tiny", torch.device("cpu"), quant="nf4")) > 0
