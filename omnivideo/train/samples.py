"""The stream of training samples of a stage: step s always gets the same videos (resumable by index).

Sample i of a stage is `make_sample(cfg.seed_offset + i)`; step s takes samples s*batch .. s*batch+batch-1.
Rendering runs in DataLoader workers when `cfg.workers` > 0 (the GPU box's CPU cores render while the
GPU trains); each worker builds its own tokenizer once.

    for samples in sample_stream(cfg, chat, first_step=120):   # lists of `cfg.batch` Samples
        ...
"""
import torch
from torch.utils.data import DataLoader, Dataset

from omnivideo.train.sample import make_sample


class StageSamples(Dataset):
    """Map-style: index i -> the Sample of seed `seed_offset + i` (augmented)."""

    def __init__(self, cfg, chat, first_index: int, count: int):
        self.cfg, self.chat, self.first, self.count = cfg, chat, first_index, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int):
        return make_sample(self.cfg.seed_offset + self.first + i, self.cfg.data, self.chat,
                           labels=self.cfg.aux_weight > 0)


def _worker_init(_):
    import cv2

    cv2.setNumThreads(1)           # workers render in parallel; OpenCV's own pool would oversubscribe
    torch.set_num_threads(1)


def sample_stream(cfg, chat, first_step: int = 0):
    """Yield a list of `cfg.batch` Samples for each step from `first_step` to `cfg.steps` - 1."""
    first, count = first_step * cfg.batch, max(0, (cfg.steps - first_step) * cfg.batch)
    data = StageSamples(cfg, chat, first, count)
    if cfg.workers == 0:
        items = (data[i] for i in range(count))
    else:
        items = iter(DataLoader(data, batch_size=None, shuffle=False, num_workers=cfg.workers,
                                prefetch_factor=4, persistent_workers=False, worker_init_fn=_worker_init,
                                collate_fn=lambda x: x))
    batch = []
    for sample in items:
        batch.append(sample)
        if len(batch) == cfg.batch:
            yield batch
            batch = []
