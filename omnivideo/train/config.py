"""Training configuration: one frozen dataclass per run, validated once, plus the named stage presets.

Stages (the curriculum of docs/training-probe.md: the tower is ~94% of a whole-model step, the LLM
alone trains ~17x faster):
- A:  tower + LLM together on short clips (7-20 s; at 448 px 1.8K-5K visual tokens), 8 per step;
- B1: LLM only (tower frozen, its outputs under no_grad) on 0.5-2 min videos (up to 16K tokens);
- B2: LLM only on 1-4 min (up to 32K tokens);
- B3: LLM only on 2-25 min (the app's sampling: 64K tokens at 256 s, 96K at its 768-frame cap for longer
  videos; `max_frames` 512 keeps every step at <= 64K).
Each preset exists at two scales: "h200" (448 px, the real thing) and "cpu" (224 px, 64 tokens per
frame pair, short clips: what this repository's CPU validation ran; see docs/training.md).

    cfg = preset("A", scale="cpu", out_dir="runs/a", steps=300)
"""
from dataclasses import dataclass, field, fields, replace

from omnivideo.errors import ConfigError
from omnivideo.train.model import ModelSize
from omnivideo.train.sample import EVAL_SEED_BASE, DataConfig

STAGES = ("A", "B1", "B2", "B3")
SCALES = ("h200", "cpu")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """One training run (a stage; resumable in pieces of at most `max_minutes` each).

    seed_offset: first training video seed of the stage (stages see disjoint videos; all < EVAL_SEED_BASE).
    batch: samples (videos, each a multi-turn chat) per optimizer step.
    micro_batch: samples per forward (right-padded together, omnivideo.train.batch); batch / micro_batch
        forwards are accumulated per step.
    tower_lr_scale: the tower's learning rate relative to `lr` (stage A); ignored when the tower is frozen.
    init_from: a previous run's dir (or its state.pt) whose weights start this one (B* from A, ...).
    aux_weight: weight of the training-only per-token heads (omnivideo.train.aux); 0 = off. Stage A only.
    sparse_gamma: 0 = dense attention; in (0, 1]: training-aware OmniSparse, the decoder's attention runs
        over the key blocks the sparse prefill would keep at this gamma (omnivideo.train.sparse_attention).
    """
    stage: str
    out_dir: str
    model: ModelSize = field(default_factory=ModelSize)
    data: DataConfig = field(default_factory=DataConfig)
    train_tower: bool = True
    steps: int = 2000
    lr: float = 2e-3
    tower_lr_scale: float = 1.0
    warmup: int = 100
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    batch: int = 1
    micro_batch: int = 1
    seed: int = 0
    seed_offset: int = 0
    device: str = "cpu"
    max_minutes: float = 8.5
    checkpoint_every: int = 200
    log_every: int = 10
    eval_every: int = 0
    eval_videos: int = 48
    eval_seed: int = EVAL_SEED_BASE
    workers: int = 0
    init_from: str | None = None
    aux_weight: float = 1.0
    sparse_gamma: float = 0.0

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"device must be cpu or cuda, got {self.device!r}")
        for name in ("steps", "batch", "micro_batch", "warmup", "checkpoint_every", "log_every"):
            if getattr(self, name) < (0 if name == "warmup" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch % self.micro_batch:
            raise ConfigError(f"batch ({self.batch}) must be a multiple of micro_batch ({self.micro_batch})")
        if not (self.lr > 0 and 0 <= self.min_lr_ratio <= 1 and self.tower_lr_scale > 0 and self.grad_clip > 0):
            raise ConfigError(f"bad optimiser settings: lr {self.lr}, min_lr_ratio {self.min_lr_ratio}, "
                              f"tower_lr_scale {self.tower_lr_scale}, grad_clip {self.grad_clip}")
        if not 0 < self.max_minutes <= 24 * 60:
            raise ConfigError(f"max_minutes must be in (0, 1440], got {self.max_minutes}")
        if self.seed_offset < 0 or self.seed_offset + self.steps * self.batch > EVAL_SEED_BASE:
            raise ConfigError("training seeds must stay below the held-out range "
                              f"({EVAL_SEED_BASE}): seed_offset {self.seed_offset}, {self.steps * self.batch} samples")
        if self.eval_seed < EVAL_SEED_BASE:
            raise ConfigError(f"eval_seed must be >= {EVAL_SEED_BASE} (disjoint from training), got {self.eval_seed}")
        if self.aux_weight < 0 or (self.aux_weight > 0 and not self.train_tower):
            raise ConfigError(f"aux_weight must be >= 0, and 0 when the tower is frozen, got {self.aux_weight}")
        if not 0.0 <= self.sparse_gamma <= 1.0:
            raise ConfigError(f"sparse_gamma must be in [0, 1] (0 = dense), got {self.sparse_gamma}")
        if self.eval_videos < 0 or self.eval_every < 0 or self.workers < 0:
            raise ConfigError("eval_videos, eval_every and workers must be >= 0")


_H200_DATA = {
    "A": DataConfig(frame_size=448, min_seconds=7, max_seconds=20, clock_offset_prob=0.5),
    "B1": DataConfig(frame_size=448, min_seconds=30, max_seconds=120, clock_offset_prob=0.2, order_pairs=6),
    "B2": DataConfig(frame_size=448, min_seconds=60, max_seconds=240, clock_offset_prob=0.1, order_pairs=6),
    "B3": DataConfig(frame_size=448, min_seconds=120, max_seconds=1500, max_frames=512,   # spacing <= 2.9 s < 3-s events
                     order_pairs=6),
}
_CPU_DATA = {   # 224 px (64 tokens per frame pair); at most 10-32 frames, spacing <= 1.8 s (< the 2-s gaps)
    "A": DataConfig(frame_size=224, min_seconds=7, max_seconds=16, max_frames=10, clock_offset_prob=0.5),
    "B1": DataConfig(frame_size=224, min_seconds=16, max_seconds=48, max_frames=32, clock_offset_prob=0.2,
                     order_pairs=6),
    "B2": DataConfig(frame_size=224, min_seconds=32, max_seconds=96, max_frames=64, clock_offset_prob=0.1,
                     order_pairs=6),
    "B3": DataConfig(frame_size=224, min_seconds=64, max_seconds=240, max_frames=160, order_pairs=6),
}
_STAGE = {   # what differs between stages, whatever the scale
    "A": dict(train_tower=True, lr=1e-3, tower_lr_scale=3.0, warmup=100, seed_offset=0, aux_weight=1.0),
    "B1": dict(train_tower=False, lr=7e-4, warmup=50, seed_offset=100_000_000, aux_weight=0.0),
    "B2": dict(train_tower=False, lr=5e-4, warmup=50, seed_offset=200_000_000, aux_weight=0.0),
    "B3": dict(train_tower=False, lr=3e-4, warmup=50, seed_offset=300_000_000, aux_weight=0.0),
}
# Total steps of a stage on the H200; one invocation pauses at `max_minutes` (8.5) and `--resume`
# continues on the same LR schedule. A measured 0.28 s/step (batch 8): ~2 runs; B1-B3: 1-3 runs each
# depending on how much faster than the probe's loop-tower numbers they run (docs/training.md section 4).
_H200_STEPS = {"A": 3600, "B1": 3000, "B2": 2000, "B3": 1500}
_H200_BATCH = {"A": (8, 8), "B1": (2, 1), "B2": (1, 1), "B3": (1, 1)}     # (batch, micro_batch)
_CPU_STEPS = {"A": 12000, "B1": 2000, "B2": 1000, "B3": 500}


def preset(stage: str, scale: str = "h200", out_dir: str = "runs", **overrides) -> TrainConfig:
    """The named stage at `scale`, with any TrainConfig field (or DataConfig field) overridden."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    h200 = scale == "h200"
    data = (_H200_DATA if h200 else _CPU_DATA)[stage]
    data_fields = {f.name for f in fields(DataConfig)}
    data_over = {k: overrides.pop(k) for k in list(overrides) if k in data_fields}
    if data_over:
        data = replace(data, **data_over)
    batch, micro = _H200_BATCH[stage] if h200 else (1, 1)
    base = dict(_STAGE[stage], steps=(_H200_STEPS if h200 else _CPU_STEPS)[stage], batch=batch, micro_batch=micro,
                device="cuda" if h200 else "cpu", workers=12 if h200 else 0,
                eval_videos=(48 if stage == "B3" else 96) if h200 else 36, checkpoint_every=250 if h200 else 100)
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
    base.update(overrides)
    return TrainConfig(stage=stage, out_dir=str(out_dir), data=data, **base)


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain JSON-able dict (state.pt and the exported checkpoint's record)."""
    from dataclasses import asdict

    return asdict(cfg)


def config_from_dict(d: dict, **overrides) -> TrainConfig:
    """Inverse of `config_to_dict`; `overrides` replace top-level fields (e.g. steps, max_minutes)."""
    d = dict(d)
    model = dict(d.pop("model"))
    for key in ("mrope_section", "fullatt_blocks"):
        model[key] = tuple(model[key])
    d.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(model=ModelSize(**model), data=DataConfig(**d.pop("data")), **d)
