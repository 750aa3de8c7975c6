"""A video prefix ingested straight into host memory (a layer staged per round) holds the device path's KV
to the bit and answers the same; the app takes that path, from ingest and from the store, when the KV does
not fit the GPU budget (real tiny model, real clips, real store, the CLI)."""
import json

import pytest
import torch

from cli_runner import run_cli
from omnivideo.app import app as app_module
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.host_kv_cache import HostKVCache, is_host_cache
from omnivideo.engine.prefill.ingest_pipeline import InputsSource
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs

cpu_bits = pytest.mark.skipif(torch.cuda.is_available(), reason="bit identity is checked on the CPU")


def _inputs(tiny, clip):
    vis = tiny.vision_config
    sampled = sample_video(clip, SamplingConfig(fps=2.0), workers=1)
    return to_model_inputs(sampled, patch_size=vis.patch_size, temporal_patch_size=vis.temporal_patch_size,
                           merge_size=vis.spatial_merge_size)


@cpu_bits
@pytest.mark.parametrize("round_tokens", [64, 10_000], ids=["a-round-per-chunk", "one-round"])
def test_host_ingest_equals_the_device_cache(tiny, clips, round_tokens):
    chat = ChatFormat(tiny.tokenizer)
    engine = Engine(tiny, EngineConfig(chunk_size=64, prefill_round_tokens=round_tokens, vision_chunk_groups=2))
    inputs = _inputs(tiny, clips[0])
    prefix = chat.prefix_ids(inputs.num_visual_tokens)
    device = engine.ingest(prefix, inputs)
    host = engine.ingest_stream(prefix, InputsSource(inputs), kv_on_host=True)
    assert is_host_cache(host.cache) and not is_host_cache(device.cache)
    assert host.cache.length == device.prefix_len == len(prefix) and host.rope_delta == device.rope_delta
    for (kd, vd), (kh, vh) in zip(device.cache.iter_layers(len(prefix)), host.cache.iter_layers(len(prefix))):
        assert kh.device.type == "cpu" and torch.equal(kd.cpu(), kh) and torch.equal(vd.cpu(), vh)
    params, question = SamplingParams(max_new_tokens=10), chat.first_turn_ids("What happens?")
    assert list(engine.generate(host, question, params, [])) == list(engine.generate(device, question, params, []))


def test_the_app_streams_the_kv_when_it_does_not_fit(tiny, data_dir, clips, tmp_path, monkeypatch):
    """`kv_on_host` as a GPU with too little memory would decide: the same answers, cold and warm, with the
    KV in host memory both times (ingested there, and loaded from the store straight there)."""
    home = tmp_path / "home"
    args = ("--data-dir", home, "ask", clips[1], "What happens?", "--model", "tiny", "--json", "--max-new-tokens", "6")
    device_answer = json.loads(run_cli(*args).stdout)
    run_cli("--data-dir", home, "cache", "rm", device_answer["entry_id"])
    monkeypatch.setattr(app_module, "kv_on_host", lambda loaded, config, tokens: True)
    made = []
    real = HostKVCache.__init__
    monkeypatch.setattr(HostKVCache, "__init__", lambda self, *a, **k: made.append(1) or real(self, *a, **k))
    cold = json.loads(run_cli(*args).stdout)
    warm = json.loads(run_cli(*args).stdout)
    assert cold["cache_hit"] is False and warm["cache_hit"] is True and len(made) == 2
    assert cold["memory"]["kv_placement"] == warm["memory"]["kv_placement"] == "host"
    assert cold["answer"] == warm["answer"] == device_answer["answer"]
    assert device_answer["memory"]["kv_placement"] == ("gpu" if torch.cuda.is_available() else "cpu")
