"""Entry point: `python -m omnivideo.train.run --stage A --out DIR [--resume]` (one time-boxed run).

    python -m omnivideo.train.run --stage A  --out runs/a                        # H200: 448 px, cuda
    python -m omnivideo.train.run --stage A  --out runs/a --resume               # continue where it paused
    python -m omnivideo.train.run --stage B1 --out runs/b1 --init runs/a         # LLM on longer videos
    python -m omnivideo.train.run --stage A  --out /tmp/a --device cpu --steps 200   # CPU scale (224 px)
    python -m omnivideo.train.run --eval-only --out runs/b3 --eval-source file    # held-out accuracy

Prints one JSON summary line at the end; a user error prints `error: ...` and exits 2.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from omnivideo.errors import ConfigError, OmniVideoError

# options that a resumed run may change (everything else comes from the saved state)
RESUMABLE = ("steps", "max_minutes", "eval_videos", "eval_every", "workers", "checkpoint_every", "log_every")
DATA_FLAGS = ("frame_size", "min_seconds", "max_seconds", "max_frames", "fps", "clock_offset_prob", "augment")
TRAIN_FLAGS = ("steps", "lr", "batch", "micro_batch", "warmup", "tower_lr_scale", "max_minutes", "eval_videos", "eval_every",
               "workers", "log_every", "checkpoint_every", "seed", "sparse_gamma")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m omnivideo.train.run", description=__doc__.split("\n")[0])
    p.add_argument("--stage", choices=["A", "B1", "B2", "B3"])
    p.add_argument("--out", required=True, help="run directory (state.pt, model/, curves, eval.json)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--init", default=None, help="start from this run's weights (a previous stage's --out)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--scale", choices=["h200", "cpu"], default=None, help="preset scale (default: by device)")
    p.add_argument("--size", choices=["default", "small"], default=None,
                   help="named model size (omnivideo.train.model.SIZES; default: the ~7M model)")
    p.add_argument("--model-json", default=None, help='ModelSize overrides, e.g. \'{"hidden": 128}\'')
    p.add_argument("--eval-only", action="store_true", help="evaluate --out's model on held-out videos")
    p.add_argument("--eval-source", choices=["render", "file"], default="render")
    p.add_argument("--eval-clock-offset", type=float, default=0.0,
                   help="share of held-out clips whose clock starts at a random time (tests clock reading)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (1 is fastest on a shared 2-core box: OpenMP oversubscription)")
    for name in TRAIN_FLAGS + DATA_FLAGS:
        kind = int if name in ("steps", "batch", "micro_batch", "warmup", "eval_videos", "eval_every", "workers", "log_every",
                               "checkpoint_every", "seed", "frame_size", "max_frames") else float
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    return p.parse_args(argv)


def _setup_threads(device: str, threads: int | None = None) -> None:
    import cv2
    import torch

    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)    # random-init weights drift into denormals; on CPU they cost ~10x
    cv2.setNumThreads(1)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def build_config(args):
    """(TrainConfig, resume state or None) from the arguments."""
    import torch

    from omnivideo.train.checkpoint import STATE_NAME, init_weights, load_state
    from omnivideo.train.config import config_from_dict, preset
    from omnivideo.train.model import MARKER
    from omnivideo.train.model import ModelSize

    out = Path(args.out)
    if args.resume:
        state = load_state(out / STATE_NAME)
        overrides = {k: getattr(args, k) for k in RESUMABLE}
        return config_from_dict(state["config"], **overrides), state
    if args.stage is None:
        raise ConfigError("--stage is required (A, B1, B2, B3) unless --resume")
    if (out / STATE_NAME).exists():
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, or another --out")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was requested but no CUDA GPU is available")
    scale = args.scale or ("h200" if device == "cuda" else "cpu")
    overrides = {k: getattr(args, k) for k in TRAIN_FLAGS + DATA_FLAGS if getattr(args, k) is not None}
    if args.size:
        from omnivideo.train.model import SIZES

        overrides["model"] = SIZES[args.size]
    if args.model_json:
        try:
            overrides["model"] = ModelSize(**{k: tuple(v) if isinstance(v, list) else v
                                              for k, v in json.loads(args.model_json).items()})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"--model-json: {e}") from e
    if args.init:
        init_dir = Path(args.init)
        if init_dir.is_dir() and not (init_dir / STATE_NAME).exists() and (init_dir / MARKER).exists():
            # an exported checkpoint (a run's model/, or the shipped omnivideo/checkpoints/synth/): its
            # training record names the size; the weights load now, so a bad directory fails before setup
            overrides["init_from"] = str(init_dir)
            init_weights(init_dir)
            record = json.loads((init_dir / MARKER).read_text())
        else:
            overrides["init_from"] = str(init_dir / STATE_NAME) if init_dir.is_dir() else args.init
            record = load_state(overrides["init_from"])   # fail now, not after setup
        if "model" not in overrides:               # the next stage continues the same model size
            overrides["model"] = config_from_dict(record["config"]).model
    return preset(args.stage, scale=scale, out_dir=str(out), device=device, **overrides), None


def eval_only(args) -> dict:
    import torch

    from omnivideo.train.checkpoint import STATE_NAME, load_state
    from omnivideo.train.config import config_from_dict
    from omnivideo.train.evaluate import evaluate
    from omnivideo.train.model import build_model
    from omnivideo.train.tokenizer import build_synth_tokenizer

    from dataclasses import replace

    state = load_state(Path(args.out) / STATE_NAME)
    cfg = config_from_dict(state["config"], eval_videos=args.eval_videos)
    data = {k: getattr(args, k) for k in DATA_FLAGS if getattr(args, k) is not None}   # e.g. longer clips
    cfg = replace(cfg, data=replace(cfg.data, **data)) if data else cfg
    tok = build_synth_tokenizer()
    model = build_model(cfg.model, tok)
    model.load_state_dict(state["model"])
    device = args.device or cfg.device
    model.to(device).eval()
    seeds = range(cfg.eval_seed, cfg.eval_seed + cfg.eval_videos)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        report = evaluate(model, tok, cfg.data, seeds, source=args.eval_source,
                          clock_offset_prob=args.eval_clock_offset)
    name = f"eval_{args.eval_source}" + (f"_offset{args.eval_clock_offset:g}" if args.eval_clock_offset else "")
    Path(args.out, f"{name}.json").write_text(json.dumps(report, indent=2))
    return {k: report[k] for k in ("overall", "kinds", "buckets", "questions")}


def main(argv=None) -> int:
    started = time.monotonic()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    try:
        if args.eval_only:
            _setup_threads(args.device or "cpu", args.threads)
            print(json.dumps(eval_only(args)))
            return 0
        cfg, state = build_config(args)
        _setup_threads(cfg.device, args.threads)
        from omnivideo.train.trainer import Trainer

        summary = Trainer(cfg, resume_state=state, started=started).run()
    except OmniVideoError as e:
        print(f"error: {str(e).strip().splitlines()[0]}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in summary.items() if k != "eval"} | {"eval": (summary["eval"] or {}).get("kinds")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
