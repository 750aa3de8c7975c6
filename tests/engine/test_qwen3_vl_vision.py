"""The Qwen3-VL vision tower on our attention (omnivideo/engine/fused/qwen3_vision_block.py): the tower and its
DeepStack features equal transformers' own, the fused forward really runs (and only for ours), and blocks it
cannot serve keep transformers' forward."""
import pytest
import torch
from torch import nn
from transformers import Qwen3VLVisionConfig
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel

import omnivideo.engine.fused.qwen3_vision_block as q3
import omnivideo.engine.fused.vision_attention as va
import omnivideo.engine.fused.vision_block as vb
from conftest import DEVICE, assert_close
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, vision_attention_of
from omnivideo.kernels import backend as kernel_backend
from vision_testkit import vision_impl

PATCH_DIM = 3 * 2 * 16 * 16       # channels x temporal patch x patch 16 x patch 16
# grid_thw in patches (t, h, w), whole 2x2 merges: one frame group; odd group counts; wide and tall frames;
# two videos in one call (segments of different lengths in one launch)
GRIDS = {
    "one_group": [[1, 4, 4]],
    "t3_wide": [[3, 6, 10]],
    "t2_tall": [[2, 12, 4]],
    "two_videos": [[1, 4, 6], [3, 2, 8]],
}


def _pixels(grid, dtype=torch.float32, seed=0):
    n = sum(t * h * w for t, h, w in grid)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(n, PATCH_DIM, generator=gen).to(DEVICE, dtype), torch.tensor(grid, device=DEVICE)


def _count(monkeypatch, backend: str) -> dict[str, int]:
    """Count the rotary op (as `block_ops` looks it up for `backend`) and the packed attention launches."""
    calls = {"rotary_qk": 0, "packed_attention": 0}
    if backend == "triton":
        from omnivideo.kernels.layers import vision_rotary as home
        name = "rotary_qk"
    else:
        home, name = vb, "rotary_qk_reference"
    real_rotary, real_attention = getattr(home, name), va.packed_attention

    def rotary(*args):
        calls["rotary_qk"] += 1
        return real_rotary(*args)

    def attention(*args, **kwargs):
        calls["packed_attention"] += 1
        return real_attention(*args, **kwargs)

    monkeypatch.setattr(home, name, rotary)
    monkeypatch.setattr(vb, "packed_attention", attention)
    return calls


def _features(model, pixels, grid) -> torch.Tensor:
    """The family's visual rows: [n, (1 + DeepStack layers) * hidden] (embeddings, then each DeepStack layer's)."""
    from omnivideo.engine.family import family_of

    with torch.inference_mode():
        return family_of(model.config).encode_video(model, pixels, grid)


def test_ours_is_fused_after_load_and_sdpa_is_not(tiny_qwen3_vl):
    model = tiny_qwen3_vl.model
    blocks = model.model.visual.blocks
    assert vision_attention_of(model) == VISION_ATTN_NAME and all(q3.is_fused(b) for b in blocks)
    with vision_impl(model, "sdpa"):
        assert vision_attention_of(model) == "sdpa"
        assert not any("forward" in b.__dict__ for b in blocks)
    assert all(q3.is_fused(b) for b in blocks)
    assert model.config.get_text_config()._attn_implementation == "omnivideo"      # the text side untouched


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_tower_and_deepstack_equal_sdpa(tiny_qwen3_vl, grid, backend, monkeypatch):
    model = tiny_qwen3_vl.model
    pixels, grid_thw = _pixels(GRIDS[grid])
    with vision_impl(model, "sdpa"):
        expected = _features(model, pixels, grid_thw)
    calls = _count(monkeypatch, backend)
    with vision_impl(model, VISION_ATTN_NAME, backend):
        actual = _features(model, pixels, grid_thw)
    depth = len(model.model.visual.blocks)
    assert calls == {"rotary_qk": depth, "packed_attention": depth}, calls    # one launch per block, all segments
    assert actual.shape[1] == 3 * model.config.vision_config.out_hidden_size     # embeddings + 2 DeepStack layers
    assert_close(grid, actual, expected, rel_rms=1e-5, atol=1e-4)


def test_sdpa_runs_transformers_forward(tiny_qwen3_vl, monkeypatch):
    calls = {b: _count(monkeypatch, b) for b in ("reference", "triton")}
    pixels, grid_thw = _pixels(GRIDS["t3_wide"])
    with vision_impl(tiny_qwen3_vl.model, "sdpa"):
        _features(tiny_qwen3_vl.model, pixels, grid_thw)
    assert all(n == 0 for c in calls.values() for n in c.values()), calls


def _small_tower(dtype=torch.float32) -> Qwen3VLVisionModel:
    """A 3-block tower (head dim 20: not a power of two) with DeepStack after blocks 0 and 1, whose weights
    make every step count: transformers' init (std 0.02) leaves the blocks' contributions so small beside the
    residual that a wrong LayerNorm bias or rotary angle would move the output by less than fp32 tolerance."""
    torch.manual_seed(0)
    config = Qwen3VLVisionConfig(depth=3, hidden_size=40, intermediate_size=88, num_heads=2, out_hidden_size=24,
                                 patch_size=16, num_position_embeddings=64, deepstack_visual_indexes=[0, 1])
    tower = Qwen3VLVisionModel(config).eval()
    with torch.no_grad():
        for module in tower.blocks.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0, 1.5 * module.in_features ** -0.5)
                module.bias.normal_(0, 0.3)
            elif isinstance(module, nn.LayerNorm):
                module.weight.normal_(1, 0.3)
                module.bias.normal_(0, 0.3)
    return tower.to(DEVICE, dtype)


def _tower_rows(tower, pixels, grid):
    out = tower(pixels, grid_thw=grid)
    return torch.cat([out.pooler_output, *out.deepstack_features], dim=-1)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("grid", ["t3_wide", "two_videos"])
def test_sensitive_tower_equals_transformers(grid, backend, monkeypatch):
    tower = _small_tower()
    pixels, grid_thw = _pixels(GRIDS[grid], seed=3)
    with torch.inference_mode():
        expected = _tower_rows(tower, pixels, grid_thw)
        assert q3.fuse_qwen3_vision_blocks(tower) == 3 and q3.fuse_qwen3_vision_blocks(tower) == 0   # idempotent
        calls = _count(monkeypatch, backend)
        with kernel_backend(backend):
            actual = _tower_rows(tower, pixels, grid_thw)
    assert calls == {"rotary_qk": 3, "packed_attention": 3}, calls
    assert_close(grid, actual, expected, rel_rms=1e-5)
    assert q3.unfuse_qwen3_vision_blocks(tower) == 3 and not any(q3.is_fused(b) for b in tower.blocks)


def test_sensitive_block_by_block_at_sharp_angles():
    """One block call with rotary angles up to 10 rad and 3 frame groups: a wrong rotation, scale or
    segment boundary shows at once."""
    tower = _small_tower()
    block = tower.blocks[1]
    gen = torch.Generator(device="cpu").manual_seed(1)
    n, d = 40, block.attn.head_dim
    x = torch.randn(n, tower.config.hidden_size, generator=gen).to(DEVICE)
    cu = torch.tensor([0, 16, 24, n], dtype=torch.int32, device=DEVICE)
    angles = (10 * torch.rand(n, d // 2, generator=gen)).repeat(1, 2).to(DEVICE)
    emb = (angles.cos(), angles.sin())
    with torch.inference_mode():
        expected = block(x, cu_seqlens=cu, position_embeddings=emb, max_seqlen=16)
        q3.fuse_qwen3_vision_blocks(tower)
        actual = block(x, cu_seqlens=cu, position_embeddings=emb, max_seqlen=torch.tensor(16))
    assert_close("block", actual, expected, rel_rms=1e-6)


class _NotPlainLinear(nn.Linear):
    """Stands in for bitsandbytes' Linear4bit (an nn.Linear subclass)."""


def test_unsupported_blocks_keep_transformers_forward():
    tower = _small_tower()
    tower.blocks[0].attn.proj.__class__ = _NotPlainLinear
    assert q3.fuse_qwen3_vision_blocks(tower) == 2 and not q3.is_fused(tower.blocks[0])
    assert q3.fuse_qwen3_vision_blocks(_small_tower(torch.float64)) == 0
    assert not q3.is_qwen3_block(vb.nn.Module())


def test_autograd_falls_back_to_transformers():
    tower = _small_tower()
    pixels, grid_thw = _pixels(GRIDS["one_group"])
    expected = _tower_rows(tower, pixels, grid_thw)
    q3.fuse_qwen3_vision_blocks(tower)
    actual = _tower_rows(tower, pixels, grid_thw)          # grad enabled, trainable weights
    assert actual.requires_grad
    actual.sum().backward()
    assert tower.blocks[0].attn.qkv.weight.grad is not None
    assert_close("autograd", actual.detach(), expected.detach(), rel_rms=0)


@pytest.fixture(scope="module")
def random_8b_tower():
    """Qwen3-VL-8B's public vision shapes (27 blocks, 1152 wide, 16 heads of 72, DeepStack 8/16/24), random bf16."""
    from omnivideo.bench.random_model import QWEN3_VL_8B_VISION

    torch.manual_seed(0)
    tower = Qwen3VLVisionModel(Qwen3VLVisionConfig(**QWEN3_VL_8B_VISION)).eval().to("cuda", torch.bfloat16)
    yield tower
    del tower
    torch.cuda.empty_cache()


@pytest.mark.gpu
@pytest.mark.parametrize("grid", [[[2, 32, 32]], [[4, 24, 42]]], ids=["512x512", "384x672_t4"])
def test_random_8b_tower_bf16_fused_equals_transformers(random_8b_tower, grid, monkeypatch):
    """The 27-block tower in bf16 through the Triton kernels: within bf16 rounding of transformers' sdpa."""
    tower = random_8b_tower
    pixels, grid_thw = _pixels(grid, torch.bfloat16)
    q3.unfuse_qwen3_vision_blocks(tower)
    with torch.inference_mode():
        expected = _tower_rows(tower, pixels, grid_thw)
        assert q3.fuse_qwen3_vision_blocks(tower) == 27
        calls = _count(monkeypatch, "triton")
        actual = _tower_rows(tower, pixels, grid_thw)
    assert calls == {"rotary_qk": 27, "packed_attention": 27}, calls
    assert_close(str(grid), actual.float(), expected.float(), rel_rms=3e-2)
