"""The fused vision block (omnivideo/engine/fused/vision_block.py): the tower equals transformers' own, the fused forward
really runs (and only for ours), gate/up share one weight, and unsupported blocks keep transformers' forward."""
import pytest
import torch
from torch import nn
from transformers import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from omnivideo.kernels import backend as kernel_backend
import omnivideo.engine.fused.vision_block as vb
from conftest import DEVICE, assert_close
from vision_testkit import GRIDS, pixels_for, tower_out, vision_impl
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, set_vision_attention
from omnivideo.engine.fused.vision_mlp import pad_vision_mlp

OPS = ("rms_norm", "add_rms_norm", "rotary_qk", "silu_mul")


def _count_ops(monkeypatch, backend: str) -> dict[str, int]:
    """Wrap the four ops of `backend` (as `block_ops` looks them up) with call counters."""
    calls = dict.fromkeys(OPS, 0)
    if backend == "triton":
        from omnivideo.kernels.layers import rms_norm, silu_mul, vision_rotary

        homes = {"rms_norm": (rms_norm, "rms_norm"), "add_rms_norm": (rms_norm, "add_rms_norm"),
                 "rotary_qk": (vision_rotary, "rotary_qk"), "silu_mul": (silu_mul, "silu_mul")}
    else:
        homes = {op: (vb, f"{op}_reference") for op in OPS}
    for op, (module, name) in homes.items():
        real = getattr(module, name)

        def counting(*args, _op=op, _real=real):
            calls[_op] += 1
            return _real(*args)

        monkeypatch.setattr(module, name, counting)
    return calls


def test_ours_is_fused_and_sdpa_is_not(tiny):
    blocks = tiny.model.model.visual.blocks
    assert all(vb.is_fused(b) for b in blocks)              # load_model installs ours
    with vision_impl(tiny.model, "sdpa"):
        assert not any(vb.is_fused(b) or "forward" in b.__dict__ for b in blocks)
    assert all(vb.is_fused(b) for b in blocks)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_tower_equals_sdpa(tiny, grid, backend, monkeypatch):
    model = tiny.model
    pixels, grid_thw = pixels_for(GRIDS[grid], tiny.device, tiny.dtype)
    with vision_impl(model, "sdpa"):
        expected = tower_out(model, pixels, grid_thw)
    calls = _count_ops(monkeypatch, backend)
    with vision_impl(model, VISION_ATTN_NAME, backend):
        actual = tower_out(model, pixels, grid_thw)
    depth = len(model.model.visual.blocks)
    assert calls == dict.fromkeys(OPS, depth), calls              # every block ran fused, once
    assert_close(grid, actual, expected, rel_rms=1e-5, atol=1e-4)


def test_sdpa_runs_transformers_forward(tiny, monkeypatch):
    """After set_vision_attention(model, "sdpa") none of our ops runs, on either backend."""
    calls = {backend: _count_ops(monkeypatch, backend) for backend in ("reference", "triton")}
    pixels, grid_thw = pixels_for(GRIDS["t3_cut_edges"], tiny.device, tiny.dtype)
    with vision_impl(tiny.model, "sdpa"):
        tower_out(tiny.model, pixels, grid_thw)
    assert all(n == 0 for c in calls.values() for n in c.values()), calls


def test_gate_up_share_storage_with_the_fused_weight(tiny):
    for block in tiny.model.model.visual.blocks:
        mlp = block.mlp
        weight, bias = vb.gate_up(mlp)
        width = mlp.gate_proj.out_features
        assert weight.shape == (2 * width, mlp.gate_proj.in_features) and bias.shape == (2 * width,)
        assert mlp.gate_proj.weight.data_ptr() == weight.data_ptr()
        assert mlp.up_proj.weight.data_ptr() == weight[width:].data_ptr()
        assert mlp.gate_proj.bias.data_ptr() == bias.data_ptr()
        assert mlp.up_proj.bias.data_ptr() == bias[width:].data_ptr()
        assert vb.gate_up(mlp)[0] is weight                      # built once, not per call
    state = tiny.model.state_dict()
    assert not any("gate_up" in key for key in state)            # checkpoints see the usual layers only


def _small_tower(dtype=torch.float32) -> nn.Module:
    """A 2-block tower (head dim 40: not a power of two; MLP width 150) whose weights make every step
    count: transformers' init (std 0.02) leaves the blocks' contributions so small beside the residual
    that a wrong eps or rotary angle would move the tower output by less than fp32 tolerance."""
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(depth=2, hidden_size=80, intermediate_size=150, num_heads=2, out_hidden_size=32,
                                    fullatt_block_indexes=[1])
    tower = Qwen2_5_VisionTransformerPretrainedModel(config).eval()
    with torch.no_grad():
        for module in tower.blocks.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0, 1.5 * module.in_features ** -0.5)
                module.bias.normal_(0, 0.3)
            elif hasattr(module, "variance_epsilon"):
                module.weight.normal_(1, 0.3)
    return tower.to(DEVICE, dtype)


def _block_inputs(tower, n: int = 40, seed: int = 1):
    """Inputs of one block call: hidden [N, C], windows [0, 16, 24, 40], rotary (cos, sin) [N, D] fp32
    (angles up to 10 rad: a wrong rotation shows)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    dtype = tower.blocks[0].norm1.weight.dtype
    x = torch.randn(n, tower.config.hidden_size, generator=gen).to(DEVICE, dtype)
    cu = torch.tensor([0, 16, 24, n], dtype=torch.int32, device=DEVICE)
    head_dim = tower.config.hidden_size // tower.config.num_heads
    angles = (10 * torch.rand(n, head_dim // 2, generator=gen)).repeat(1, 2).to(DEVICE)
    return x, cu, (angles.cos(), angles.sin())


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("grid", ["t3_cut_edges", "two_videos"])
def test_sensitive_tower_equals_transformers(grid, backend, monkeypatch):
    """The small tower with large weights, padded and fused as ours is, against its own forward."""
    tower = _small_tower()
    pixels, grid_thw = pixels_for(GRIDS[grid], DEVICE, torch.float32)
    with torch.inference_mode():
        expected = tower(pixels, grid_thw=grid_thw).pooler_output
        pad_vision_mlp(tower)
        assert vb.fuse_vision_blocks(tower) == 2
        with kernel_backend(backend):
            calls = _count_ops(monkeypatch, backend)
            actual = tower(pixels, grid_thw=grid_thw).pooler_output
    assert calls == dict.fromkeys(OPS, 2), calls
    assert_close(grid, actual, expected, rel_rms=1e-5)


def test_block_forward_equals_transformers_and_keeps_its_mlp(monkeypatch):
    """One fused block called directly (no max_seqlen) equals transformers' block; the MLP over its
    re-pointed gate/up views still gives the same values as before fusing."""
    tower = _small_tower()
    block = tower.blocks[0]
    x, cu, rotary = _block_inputs(tower)
    with torch.inference_mode():
        expected = block(x, cu_seqlens=cu, position_embeddings=rotary)
        mlp_before = block.mlp(x)
        assert vb.fuse_vision_blocks(tower) == 2 and vb.fuse_vision_blocks(tower) == 0     # idempotent
        with kernel_backend("reference"):     # counted below; on a GPU "auto" would take the Triton kernels
            calls = _count_ops(monkeypatch, "reference")
            actual = block(x, cu_seqlens=cu, position_embeddings=rotary)
        assert calls["silu_mul"] == 1
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(block.mlp(x), mlp_before, rtol=0, atol=0)
    assert vb.unfuse_vision_blocks(tower) == 2 and not any(vb.is_fused(b) for b in tower.blocks)


def test_autograd_falls_back_to_transformers_forward(monkeypatch):
    """Our kernels have no backward: with grad enabled and trainable weights the block runs transformers' forward."""
    tower = _small_tower()
    vb.fuse_vision_blocks(tower)
    calls = _count_ops(monkeypatch, "reference")
    x, cu, rotary = _block_inputs(tower)
    out = tower.blocks[0](x, cu_seqlens=cu, position_embeddings=rotary)
    assert out.requires_grad and calls == dict.fromkeys(OPS, 0)


def test_unsupported_blocks_keep_transformers_forward():
    """A non-plain Linear (as bitsandbytes' Linear4bit, a subclass) or a float64 tower is not fused."""
    class OtherLinear(nn.Linear):
        pass

    tower = _small_tower()
    qkv = tower.blocks[1].attn.qkv
    other = OtherLinear(qkv.in_features, qkv.out_features, device=DEVICE)
    tower.blocks[1].attn.qkv = other
    assert vb.fuse_vision_blocks(tower) == 1
    assert vb.is_fused(tower.blocks[0]) and not vb.is_fused(tower.blocks[1])
    assert vb.fuse_vision_blocks(_small_tower(torch.float64)) == 0
    hooked = _small_tower()
    hooked.blocks[0].forward = hooked.blocks[0].forward        # an instance forward of someone else's (a hook)
    assert vb.fuse_vision_blocks(hooked) == 1 and not vb.is_fused(hooked.blocks[0])


def test_moved_weights_are_fused_again():
    """gate/up re-pointed elsewhere (a new layer, `model.to(...)`) are picked up, not silently stale."""
    tower = _small_tower()
    vb.fuse_vision_blocks(tower)
    mlp = tower.blocks[0].mlp
    old, _ = vb.gate_up(mlp)
    with torch.no_grad():
        mlp.up_proj.weight = nn.Parameter(mlp.up_proj.weight + 1.0)
    new, _ = vb.gate_up(mlp)
    assert new.data_ptr() != old.data_ptr()
    torch.testing.assert_close(new[mlp.gate_proj.out_features:], mlp.up_proj.weight, rtol=0, atol=0)
    assert mlp.up_proj.weight.data_ptr() == new[mlp.gate_proj.out_features:].data_ptr()


@pytest.fixture(scope="module")
def random_7b_tower():
    from omnivideo.bench.random_model import random_model

    loaded = random_model("7b", torch.device("cuda"), quant="none", full_vision=True)
    yield loaded
    del loaded
    torch.cuda.empty_cache()


@pytest.mark.gpu
@pytest.mark.parametrize("grid", [[[2, 32, 32]], [[4, 24, 42]]], ids=["448x448", "336x588_t4"])
def test_random_7b_tower_bf16_fused_equals_sdpa(random_7b_tower, grid, monkeypatch):
    """The 32-block tower (head dim 80, MLP padded to 3456) in bf16, fused blocks through the Triton
    kernels: within bf16 rounding of transformers' sdpa."""
    model = random_7b_tower.model
    pixels, grid_thw = pixels_for(grid, DEVICE, torch.bfloat16)
    with vision_impl(model, "sdpa"):
        expected = tower_out(model, pixels, grid_thw)
    calls = _count_ops(monkeypatch, "triton")
    with vision_impl(model, VISION_ATTN_NAME):
        assert all(vb.is_fused(b) for b in model.model.visual.blocks)
        actual = tower_out(model, pixels, grid_thw)
    assert calls == dict.fromkeys(OPS, 32), calls
    assert_close(str(grid), actual.float(), expected.float(), rel_rms=3e-2)
