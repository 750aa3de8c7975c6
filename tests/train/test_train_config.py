"""Stage presets are valid, keep training and held-out seeds apart, and survive a save/load."""
import pytest

from omnivideo.errors import ConfigError
from omnivideo.train.config import STAGES, config_from_dict, config_to_dict, preset
from omnivideo.train.optim import WarmupCosine
from omnivideo.train.sample import EVAL_SEED_BASE


@pytest.mark.parametrize("scale", ["h200", "cpu"])
@pytest.mark.parametrize("stage", STAGES)
def test_presets(stage, scale):
    cfg = preset(stage, scale=scale, out_dir="x")
    assert cfg.train_tower == (stage == "A") and (cfg.aux_weight > 0) == (stage == "A")
    assert cfg.seed_offset + cfg.steps * cfg.batch * 50 < EVAL_SEED_BASE <= cfg.eval_seed
    assert config_from_dict(config_to_dict(cfg)) == cfg
    if scale == "h200":
        assert cfg.data.frame_size == 448 and cfg.device == "cuda"


def test_stages_see_disjoint_videos():
    offsets = sorted(preset(s, out_dir="x").seed_offset for s in STAGES)
    assert all(b - a >= 100_000_000 for a, b in zip(offsets, offsets[1:]))


@pytest.mark.parametrize("bad", [dict(lr=0), dict(batch=3, micro_batch=2), dict(stage="C"), dict(eval_seed=5),
                                 dict(aux_weight=1.0, train_tower=False), dict(max_minutes=0), dict(frame_size=100),
                                 dict(bogus=1)])
def test_bad_options(bad):
    stage = bad.pop("stage", "A")
    with pytest.raises(ConfigError):
        preset(stage, out_dir="x", **bad)


def test_warmup_cosine():
    f = WarmupCosine(warmup=10, total=110, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(60) == pytest.approx(0.55) and f(110) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
