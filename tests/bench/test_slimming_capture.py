"""`bench capture --question`: the turn's real Q/K (tiny model, generated clip), and the decode-slimming
benchmark run on it instead of the structured workload."""
import pytest
import torch

from conftest import make_clip
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.bench.capture import CaptureConfig, capture, load_qk
from cli_runner import bench_ok, run_cli
from omnivideo.bench.slimming.slimming import SlimmingBench, run
from omnivideo.bench.slimming.captured import captured_slimming
from omnivideo.errors import ConfigError
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs

QUESTION = "What moves in this clip?"
ANSWER = 6


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("turn") / "clip.mp4", seconds=4.0, fps=8.0, size=(224, 168), seed=9)


@pytest.fixture(scope="module")
def turn_file(tiny, clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("qk") / "turn.safetensors"
    meta = capture(clip, out, loaded=tiny, config=CaptureConfig(layers=(0, 1), question=QUESTION, answer_tokens=ANSWER))
    return out, meta


def test_turn_is_the_engines_own_question_and_answer(tiny, clip, turn_file):
    out, meta = turn_file
    qk = load_qk(out)
    tq = len(ChatFormat(tiny.tokenizer).first_turn_ids(QUESTION))
    assert meta["question_tokens"] == tq and meta["answer_tokens"] == ANSWER and meta["question"] == QUESTION
    q_turn, k_turn, v_turn = qk.turns[1]
    hq, n, d = qk.layers[1][0].shape
    assert q_turn.shape == (hq, tq + ANSWER, d) and k_turn.shape == v_turn.shape == (qk.layers[1][1].shape[0], tq + ANSWER, d)
    # the same question and greedy answer through the engine: its cache holds exactly these rows
    vis = tiny.vision_config
    inputs = to_model_inputs(sample_video(clip, SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    prefix = ChatFormat(tiny.tokenizer).prefix_ids(inputs.num_visual_tokens)
    engine = Engine(tiny, EngineConfig())
    conv = engine.ingest(prefix, inputs)
    list(engine.generate(conv, ChatFormat(tiny.tokenizer).first_turn_ids(QUESTION),
                         SamplingParams(max_new_tokens=ANSWER + 1), []))
    k_cache, v_cache = conv.cache.layer_kv(1)
    assert k_cache.shape[1] == n + tq + ANSWER
    assert torch.equal(k_turn, k_cache[:, n:].cpu()) and torch.equal(v_turn, v_cache[:, n:].cpu())


def test_slimming_runs_on_the_capture(turn_file, tmp_path):
    out, meta = turn_file
    bench, inputs, workload = captured_slimming(out, SlimmingBench(min_tokens=4, kernel_queries=1))
    assert bench.layers == 2 and bench.decode_queries == ANSWER and bench.observe == meta["question_tokens"]
    assert inputs[0].k.shape[1] == meta["prefix_tokens"] + meta["question_tokens"]
    assert int(inputs[0].visual_mask.sum()) == meta["visual_tokens"] == bench.visual_tokens
    result = run(bench, inputs, workload)
    sweep = result["sweep"]
    assert sweep[-1]["size_ratio"] == 1.0 and sweep[-1]["error_mean"] < 1e-5  # gamma 1 keeps every token
    assert all(hi["size_ratio"] <= lo["size_ratio"] for lo, hi in zip(sweep, sweep[1:]))
    assert result["captured"] and "captured Q/K of tiny" in result["workload"]
    bench_ok("slimming", "--qk", out, "--out", tmp_path)
    assert (tmp_path / "report.md").read_text().startswith("# Decode KV slimming (mechanism 3) on captured Q/K")


def test_a_prefix_only_capture_is_refused(tiny, clip, tmp_path):
    plain = tmp_path / "prefix.safetensors"
    capture(clip, plain, loaded=tiny, config=CaptureConfig(layers=(1,), max_tokens=100))
    with pytest.raises(ConfigError, match="--question and --answer-tokens"):
        captured_slimming(plain, SlimmingBench())
    result = run_cli("bench", "slimming", "--qk", plain, "--out", tmp_path / "r")
    assert result.exit_code == 2 and result.stderr.startswith("error:") and "--answer-tokens" in result.stderr


@pytest.mark.parametrize("kwargs", [dict(answer_tokens=4), dict(question="q", max_tokens=100),
                                    dict(question="  "), dict(question="q", answer_tokens=-1)])
def test_turn_options_are_validated(kwargs):
    with pytest.raises(ConfigError):
        CaptureConfig(**kwargs)
