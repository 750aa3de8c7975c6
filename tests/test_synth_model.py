"""The shipped checkpoint `synth` through the real paths: from_pretrained, the CLI, the store, held-out questions.

A regression guard for the checkpoint and the engine together: held-out synthetic videos (seeds training
never used, written as real files and decoded by the app) must keep their measured accuracy, and a
question asked again in a new process must get the same (right) answer from the stored prefix.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli_runner import run_cli
from omnivideo.engine.loading import LoadOptions, load_model
from omnivideo.synth.heldout import EVAL_SEED_BASE, write_heldout

ROOT = Path(__file__).resolve().parents[1]


def test_synth_loads_through_from_pretrained(tmp_path):
    loaded = load_model(LoadOptions(model="synth", models_dir=tmp_path, dtype="float32", quant="none"))
    cfg = loaded.model.config
    assert cfg.model_type == "qwen2_5_vl" and cfg.text_config.hidden_size == 256 and cfg.vision_config.depth == 4
    assert loaded.revision.startswith("xxh3:") and sum(p.numel() for p in loaded.model.parameters()) == 7_702_144
    shards = sorted((ROOT / "omnivideo" / "checkpoints" / "synth").glob("*.safetensors"))
    assert shards and all(s.stat().st_size <= 15 * 2**20 for s in shards)


def _ask(home: Path, video: Path, question: str) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "launcher.py"), "--data-dir", str(home), "ask", str(video),
                          question, "--model", "synth", "--json", "--max-new-tokens", "8"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_same_question_cold_and_warm_gets_the_same_right_answer(tmp_path):
    rows = write_heldout(tmp_path / "v", [EVAL_SEED_BASE + 7], seconds=14, kinds=("needle",))
    video, question, expected = tmp_path / "v" / rows[0]["video"], rows[0]["question"], rows[0]["answer"]
    cold = _ask(tmp_path / "home", video, question)                 # a new process: decode, vision, prefill, store
    warm = _ask(tmp_path / "home", video, question)                 # another one: the stored prefix from disk
    assert (cold["cache_hit"], warm["cache_hit"]) == (False, True)
    assert cold["answer"] == warm["answer"] == expected == "magenta"
    assert warm["tokens"]["reused"] == cold["tokens"]["reused"] > 3000


@pytest.mark.slow
def test_heldout_accuracy_does_not_regress(tmp_path):
    """8 held-out 14 s videos, their needle and grounding questions, through `bench accuracy` (the app's ask
    path). Measured on this checkpoint on a CPU: 17 of 26 right (needle 9/13, grounding 8/13); chance is
    about 1 in 6 for a colour. The guard: at least half right, and each kind at least 40%."""
    write_heldout(tmp_path / "v", range(EVAL_SEED_BASE + 500, EVAL_SEED_BASE + 508), seconds=14,
                  kinds=("needle", "grounding"))
    out = run_cli("--data-dir", tmp_path / "home", "bench", "accuracy", tmp_path / "v" / "questions.jsonl",
                  "--model", "synth", "--out", tmp_path / "r", "--max-new-tokens", "8")
    assert out.exit_code == 0, out.stderr
    summary = json.loads((tmp_path / "r" / "accuracy.json").read_text())["summary"]
    assert summary["n"] == 26 and summary["accuracy"] >= 0.5, summary
    assert all(k["accuracy"] >= 0.4 for k in summary["by_kind"].values()), summary["by_kind"]
