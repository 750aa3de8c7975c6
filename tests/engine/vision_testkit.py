"""Shared pieces of the vision tower tests (test_vision_attention.py, test_vision_block.py)."""
from contextlib import contextmanager

import torch

from omnivideo.kernels import backend as kernel_backend
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, set_vision_attention

PATCH_DIM = 3 * 2 * 14 * 14        # channels x temporal patch x patch x patch
# grid_thw in patches (t, h, w): one exact 8x8-patch window; odd frame counts; non-square frames;
# sizes whose 8x8 windows are cut at the right / bottom edges; two videos in one call.
GRIDS = {
    "one_window": [[1, 8, 8]],
    "t3_cut_edges": [[3, 10, 14]],
    "t1_wide_cut": [[1, 6, 22]],
    "t2_tall": [[2, 20, 12]],
    "two_videos": [[1, 4, 6], [3, 10, 8]],
}


@contextmanager
def vision_impl(model, impl: str, backend: str = "auto"):
    """Run with `impl` (and our backend) and restore the session model's defaults afterwards."""
    set_vision_attention(model, impl)
    try:
        with kernel_backend(backend):
            yield
    finally:
        set_vision_attention(model, VISION_ATTN_NAME)


def pixels_for(grid: list[list[int]], device, dtype, seed: int = 0):
    """Random pixel rows [sum t*h*w, PATCH_DIM] and grid_thw for `grid`."""
    n = sum(t * h * w for t, h, w in grid)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, PATCH_DIM, generator=gen).to(device, dtype), torch.tensor(grid, device=device)


def tower_out(model, pixels, grid) -> torch.Tensor:
    """The merged video embeddings of the model's tower."""
    with torch.inference_mode():
        return torch.cat(model.model.get_video_features(pixels, grid).pooler_output, dim=0)
