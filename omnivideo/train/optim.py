"""Optimiser and learning-rate schedule: AdamW (fused on CUDA) with linear warmup then cosine decay.

Two parameter groups per module set: matrices get weight decay, norms and biases do not; the vision
tower's groups take `lr * tower_lr_scale`, and are left out entirely when the tower is frozen.

    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg)     # LambdaLR; its state_dict resumes the position
"""
import math

import torch


class WarmupCosine:
    """LR multiplier at step s: linear warmup to 1 over `warmup` steps, cosine down to `min_ratio` at `total`.

    A callable object (not a lambda) so LambdaLR's state_dict carries it and resumes identically."""

    def __init__(self, warmup: int, total: int, min_ratio: float):
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _groups(named_params, lr: float, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for _, p in named_params:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return [g for g in ({"params": decay, "lr": lr, "weight_decay": weight_decay},
                        {"params": no_decay, "lr": lr, "weight_decay": 0.0}) if g["params"]]


def make_optimizer(model, cfg, extra=None) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (betas 0.9/0.95: short runs, small batches); `extra`: a
    training-only module (the auxiliary heads) trained at the tower's rate."""
    visual = model.model.visual
    vision_ids = {id(p) for p in visual.parameters()}
    rest = [(n, p) for n, p in model.named_parameters() if id(p) not in vision_ids]
    groups = _groups(rest, cfg.lr, cfg.weight_decay)
    if cfg.train_tower:
        groups += _groups(visual.named_parameters(), cfg.lr * cfg.tower_lr_scale, cfg.weight_decay)
    if extra is not None:
        groups += _groups(extra.named_parameters(), cfg.lr * cfg.tower_lr_scale, 0.0)
    fused = cfg.device == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


def make_scheduler(optimizer, cfg) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(cfg.warmup, cfg.steps, cfg.min_lr_ratio))


def freeze_tower(model) -> None:
    """Stage B: the vision tower takes no gradient (its outputs are computed under no_grad)."""
    for p in model.model.visual.parameters():
        p.requires_grad_(False)
