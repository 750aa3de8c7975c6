"""The CLI contract: every command has help; ask --json has every field; user errors are one line, exit 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from launcher import cli  # noqa: E402


def _all_commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from _all_commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", list(_all_commands(cli)), ids=lambda p: " ".join(p))
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def _run(args, data_dir, timeout=300):
    env = dict(os.environ, OMNIVIDEO_HOME=str(data_dir), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / "launcher.py"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def test_ask_json_has_every_contract_field(data_dir, clips):
    out = _run(["ask", str(clips[0]), "What happens?", "--model", "tiny", "--json", "--max-new-tokens", "8"], data_dir)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert {"answer", "model", "attention", "cache_hit", "timings", "tokens", "frames"} <= obj.keys()
    assert {"video_s", "vision_s", "prefill_s", "ttft_s", "total_s"} <= obj["timings"].keys()
    assert {"visual", "prompt", "generated"} <= obj["tokens"].keys()
    assert obj["model"] == "tiny" and obj["attention"] == "dense" and obj["cache_hit"] is False
    assert obj["tokens"]["visual"] > 0 and obj["tokens"]["prompt"] > obj["tokens"]["visual"]
    assert 0 < obj["tokens"]["generated"] <= 8
    assert obj["frames"]["count"] == len(obj["frames"]["timestamps_s"]) >= 2
    assert obj["frames"]["timestamps_s"] == sorted(obj["frames"]["timestamps_s"])
    assert all(v >= 0 for v in obj["timings"].values())
    assert "Traceback" not in out.stderr


def test_ask_streams_text_without_json(data_dir, clips):
    out = _run(["ask", str(clips[1]), "Who?", "--model", "tiny", "--max-new-tokens", "4"], data_dir)
    assert out.returncode == 0, out.stderr
    assert not out.stdout.lstrip().startswith("{")


def _bad_inputs(tmp):
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    return {"missing": tmp / "nope.mp4", "text": text, "empty": empty, "directory": tmp}


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "directory"])
def test_bad_video_inputs_exit_2_with_one_error_line(tmp_path, data_dir, kind):
    path = _bad_inputs(tmp_path)[kind]
    out = _run(["ask", str(path), "What happens?", "--model", "tiny"], data_dir)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert out.stdout == ""


def test_unknown_model_and_bad_option_are_one_line_errors(data_dir, clips, tmp_path):
    out = _run(["ask", str(clips[0]), "q", "--model", "not-a-model"], data_dir)
    assert out.returncode == 2 and out.stderr.strip().startswith("error:") and "not-a-model" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    out = _run(["ask", str(clips[0]), "q", "--fps", "-1", "--model", "tiny"], data_dir)
    assert out.returncode == 2 and out.stderr.startswith("error:") and len(out.stderr.strip().splitlines()) == 1
    out = _run(["ask", str(clips[0]), "q", "--gamma-decode", "1.5", "--model", "tiny"], data_dir)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "gamma-decode" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_ask_with_a_slimmed_decode_kv(data_dir, clips):
    """--gamma-decode < 1 answers through the same loop with each KV head's slimmed KV."""
    out = _run(["ask", str(clips[0]), "What happens?", "--model", "tiny", "--json", "--max-new-tokens", "6",
                "--gamma-decode", "0.5"], data_dir)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert 0 < obj["tokens"]["generated"] <= 6
    assert obj["decode"]["gamma_decode"] == 0.5 and 0 < obj["decode"]["kept_visual_share"] < 1
    assert obj["decode"]["cuda_graph"] is False  # CPU: the same step, eager


def test_gpu_only_option_without_gpu_is_refused(data_dir, clips):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = _run(["ask", str(clips[0]), "q", "--model", "tiny", "--device", "cuda"], data_dir)
    assert out.returncode == 2 and out.stderr.startswith("error:") and "GPU" in out.stderr


def test_probe_json_contract_fields(data_dir, clips):
    out = _run(["probe", str(clips[0]), "--json", "--fps", "2"], data_dir, timeout=120)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    for key in ("duration_s", "fps", "frame_count", "width", "height", "codec", "sampled", "visual_tokens"):
        assert key in obj, key
    assert {"count", "timestamps_s", "resized_height", "resized_width"} <= obj["sampled"].keys()
    assert obj["width"] == 160 and obj["height"] == 120 and obj["visual_tokens"] > 0


def test_demo_asks_the_shipped_model_a_question_it_answers(data_dir):
    """`make demo`: a held-out synthetic clip, its needle question, the synth checkpoint's answer and the
    expected one (this clip's question is one the checkpoint gets right on a CPU)."""
    out = _run(["demo"], data_dir)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[1] == "question: What colour is the ring?" and lines[2] == "answer (synth): magenta"
    assert lines[3] == "expected: magenta (correct)"
    obj = json.loads(_run(["demo", "--json", "--model", "tiny"], data_dir).stdout)
    assert obj["model"] == "tiny" and obj["expected"] == "magenta" and obj["frames"]["count"] == 28


@pytest.mark.parametrize("exc, line", [
    (MemoryError(), "error: out of memory: fewer visual tokens (--max-frames / --fps) lower it"),
    ("cuda", "error: out of GPU memory: fewer visual tokens (--max-frames / --fps) lower it"),
    (ValueError("boom"), "error: internal error: ValueError: boom (run with --verbose for the traceback)")])
def test_error_boundary_translates_out_of_memory(exc, line, capsys):
    """The boundary every command runs under: host and CUDA OOM are user errors (exit 2) with a hint."""
    import click
    import torch

    from omnivideo.cli.console import ErrorBoundaryGroup

    @click.group(cls=ErrorBoundaryGroup)
    def group():
        pass

    @group.command()
    def work():
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB") if exc == "cuda" else exc

    with pytest.raises(SystemExit) as stop:
        group.main(["work"], prog_name="omnivideo")
    err = capsys.readouterr().err
    assert stop.value.code == (1 if isinstance(exc, ValueError) else 2)
    assert err.startswith(line) and err.count("\n") == 1 and "Traceback" not in err


def test_app_engine_decodes_through_the_engine_loop(tmp_path):
    """Every app answer streams from the static-buffer decode loop, at the configured gamma_decode."""
    from omnivideo.app.app import App
    from omnivideo.app.config import AppConfig

    engine = App(AppConfig(data_dir=tmp_path, model="tiny", gamma_decode=0.8)).engine
    assert engine.slim_decode is not None and engine.slim_decode.gamma_decode == 0.8
    assert App(AppConfig(data_dir=tmp_path, model="tiny")).engine.slim_decode.gamma_decode == 1.0
