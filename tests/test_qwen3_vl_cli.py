"""`--model tiny-qwen3-vl` through the real command line: ask / chat / ingest / cache / serve, cold and warm
answers equal, and the store key holding the family and the processor (a Qwen2.5-VL entry never hits)."""
import json
import os

from click.testing import CliRunner

from cli_runner import run_cli
from conftest import make_clip
from omnivideo.app.app import App
from omnivideo.app.config import AppConfig
from omnivideo.app.library import cache_key
from ui.ui_testkit import ServeProcess, free_port

MODEL = ("--model", "tiny-qwen3-vl")


def _home(tmp_path, data_dir):
    """A fresh data dir sharing the session's tiny checkpoints (no rebuild per test)."""
    home = tmp_path / "home"
    home.mkdir(parents=True)
    os.symlink(data_dir / "models", home / "models")
    return home


def _ask(home, video, *extra):
    result = run_cli("--data-dir", home, "ask", video, "What happens?", "--json", "--max-new-tokens", "8", *extra)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_ask_ingest_cache_chat_with_tiny_qwen3_vl(tmp_path, data_dir, tiny_qwen3_vl, tiny):
    home = _home(tmp_path, data_dir)
    video = make_clip(tmp_path / "v.mp4", seconds=3, seed=4)
    cold = _ask(home, video, *MODEL)
    warm = _ask(home, video, *MODEL)
    assert cold["model"] == "tiny-qwen3-vl" and cold["cache_hit"] is False and warm["cache_hit"] is True
    assert warm["answer"] == cold["answer"] and warm["tokens"]["visual"] == cold["tokens"]["visual"] > 0
    assert warm["frames"] == cold["frames"] and cold["frames"]["count"] == 6   # 3 s at 2 fps: ask --json times
    # a Qwen2.5-VL run of the same video: its own entry, never the Qwen3-VL one
    other = _ask(home, video, "--model", "tiny")
    assert other["cache_hit"] is False and other["entry_id"] != cold["entry_id"]
    assert _ask(home, video, *MODEL)["entry_id"] == cold["entry_id"]
    listed = json.loads(run_cli("--data-dir", home, "cache", "ls", "--json").stdout)
    models = sorted(item.get("model_id") for item in (listed if isinstance(listed, list) else listed["entries"]))
    assert models == ["tiny", "tiny-qwen3-vl"]
    verify = run_cli("--data-dir", home, "cache", "verify", "--json")
    assert verify.exit_code == 0, verify.stderr
    # ingest into another data dir, then ask there: a hit with the same answer as the cold run
    home2 = _home(tmp_path / "second", data_dir)
    second = make_clip(tmp_path / "w.mp4", seconds=3, seed=4)   # the same content under another name
    ingested = run_cli("--data-dir", home2, "ingest", second, *MODEL, "--json")
    assert ingested.exit_code == 0, ingested.stderr
    again = _ask(home2, second, *MODEL)
    assert again["cache_hit"] is True and again["answer"] == cold["answer"]
    from omnivideo.cli.main import cli

    chat = CliRunner().invoke(cli, ["--data-dir", str(home2), "chat", str(second), *MODEL, "--max-new-tokens", "4"],
                              input="Who?\nAnd then?\n\n", catch_exceptions=False)
    assert chat.exit_code == 0, chat.stderr
    assert chat.stdout.count("you> ") == 3   # two answered turns, then the empty line ends it


def test_the_key_holds_family_and_processor(tmp_path, data_dir, tiny_qwen3_vl, tiny):
    video = make_clip(tmp_path / "k.mp4", seconds=2, seed=3)
    keys = {}
    for model in ("tiny", "tiny-qwen3-vl"):
        app = App(AppConfig(data_dir=_home(tmp_path / model, data_dir), model=model))
        keys[model] = cache_key(app.store, video, app.loaded, app.chat_format(), app.sampling_config(),
                                "dense", app.engine.config)
        app.close()
    diff = keys["tiny"].differences(keys["tiny-qwen3-vl"])
    assert "engine.family qwen2_5_vl -> qwen3_vl" in diff
    assert "engine.processor.patch_size 14 -> 16" in diff and "engine.processor.timestamps False -> True" in diff
    assert "sampling.factor 28 -> 32" in diff and any(d.startswith("prefix_tokens_sha256") for d in diff)
    assert keys["tiny"].digest() != keys["tiny-qwen3-vl"].digest()


def test_serve_starts_with_tiny_qwen3_vl(tmp_path, data_dir, tiny_qwen3_vl):
    home = _home(tmp_path, data_dir)
    with ServeProcess(home, free_port(), *MODEL) as server:
        server.wait_ready(timeout_s=120)
        assert "model tiny-qwen3-vl" in server.log()
