"""A run interrupted and resumed trains exactly like an uninterrupted one (CPU, bit for bit)."""
import json

import torch
from train_testkit import CLIPS, TINY

from omnivideo.train.checkpoint import load_state
from omnivideo.train.config import TrainConfig
from omnivideo.train.run import main
from omnivideo.train.trainer import Trainer


def _cfg(out, **kw):
    base = dict(stage="A", out_dir=str(out), model=TINY, data=CLIPS, steps=6, warmup=2, lr=3e-3, eval_videos=0,
                checkpoint_every=100, log_every=1, max_minutes=30)
    base.update(kw)
    return TrainConfig(**base)


def _losses(history):
    return [row["loss"] for row in history if "loss" in row]


def test_resume_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    whole = Trainer(_cfg(tmp_path / "whole")).run()
    assert whole["status"] == "done" and whole["step"] == 6

    first = Trainer(_cfg(tmp_path / "split")).run(until_step=3)
    assert first["status"] == "paused" and first["step"] == 3
    torch.manual_seed(123)   # a resumed process starts with other RNG state: the saved one must win
    state = load_state(tmp_path / "split")
    second = Trainer(_cfg(tmp_path / "split"), resume_state=state).run()
    assert second["status"] == "done" and second["step"] == 6

    a, b = load_state(tmp_path / "whole"), load_state(tmp_path / "split")
    assert _losses(a["history"]) == _losses(b["history"])
    assert len(_losses(a["history"])) == 6
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    assert (tmp_path / "split" / "model" / "config.json").is_file()
    assert json.loads((tmp_path / "split" / "loss_curve.json").read_text())
    assert (tmp_path / "split" / "loss_curve.png").stat().st_size > 1000


def test_loss_falls_on_a_fixed_batch(tmp_path):
    """The whole path (tower, placeholders, M-RoPE, LLM, masked loss) can fit: one video, repeated."""
    cfg = _cfg(tmp_path / "fit", steps=30, warmup=1, lr=3e-3, data=CLIPS)
    trainer = Trainer(cfg)
    from omnivideo.train.sample import make_sample

    sample = make_sample(7, CLIPS, trainer.chat, augment=False, labels=True)
    losses = [trainer.train_step([sample])[0] for _ in range(30)]
    assert losses[-1] < 0.4 * losses[0], losses


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "none"), "--resume"]) == 2
    assert capsys.readouterr().err.startswith("error: no training state")
    assert main(["--out", str(tmp_path / "x"), "--stage", "A", "--device", "cpu", "--lr", "-1"]) == 2
    assert "error:" in capsys.readouterr().err
