"""The vision tower through our attention hook equals transformers' own (sdpa), one call per layer."""
import pytest
import torch

import omnivideo.engine.fused.vision_attention as va
from conftest import assert_close
from vision_testkit import GRIDS, pixels_for, tower_out, vision_impl
from omnivideo.engine.engine import Engine
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, set_vision_attention, vision_attention_of
from omnivideo.errors import ConfigError



def test_load_model_uses_ours_and_leaves_text_attention(tiny):
    assert vision_attention_of(tiny.model) == VISION_ATTN_NAME
    assert tiny.model.config.text_config._attn_implementation == "omnivideo"
    with vision_impl(tiny.model, "sdpa"):
        assert vision_attention_of(tiny.model) == "sdpa"
        assert tiny.model.config.text_config._attn_implementation == "omnivideo"
    assert vision_attention_of(tiny.model) == VISION_ATTN_NAME


def test_unknown_implementation_is_a_config_error(tiny):
    with pytest.raises(ConfigError, match="vision attention"):
        set_vision_attention(tiny.model, "flash_attention_2")
    assert vision_attention_of(tiny.model) == VISION_ATTN_NAME


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_tower_equals_sdpa(tiny, grid, backend):
    model = tiny.model
    pixels, grid_thw = pixels_for(GRIDS[grid], tiny.device, tiny.dtype)
    with vision_impl(model, "sdpa"):
        expected = tower_out(model, pixels, grid_thw)
    with vision_impl(model, VISION_ATTN_NAME, backend):
        actual = tower_out(model, pixels, grid_thw)
    assert_close(grid, actual, expected, rel_rms=1e-5, atol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_attention_module_with_sharp_scores_equals_sdpa(tiny, backend):
    """One vision attention module on large inputs: the random tiny weights alone give almost
    uniform attention, which would hide a wrong scale or softmax; here the scores are sharp."""
    attn = tiny.model.model.visual.blocks[0].attn
    lengths = [64, 16, 64, 40, 8, 1]
    cu = torch.tensor([0] + lengths, device=tiny.device).cumsum(0).to(torch.int32)
    gen = torch.Generator(device="cpu").manual_seed(2)
    x = (30 * torch.randn(sum(lengths), attn.dim, generator=gen)).to(tiny.device, tiny.dtype)
    ones = torch.ones(sum(lengths), attn.head_dim, device=tiny.device, dtype=tiny.dtype)
    rotary = (ones, torch.zeros_like(ones))         # cos 1, sin 0: identity rotary, any transformers version

    def run():
        with torch.inference_mode():
            return attn(x, cu_seqlens=cu, position_embeddings=rotary, max_seqlen=max(lengths))

    with vision_impl(tiny.model, "sdpa"):
        expected = run()
    with vision_impl(tiny.model, VISION_ATTN_NAME, backend):
        actual = run()
    assert_close("attn", actual, expected, rel_rms=1e-5)


def test_one_call_per_block(tiny, monkeypatch):
    """Windowed block 0 and full block 1 of the tiny tower: one call each, with every segment packed."""
    calls = []
    real = va.varlen_attention_reference

    def counting(q, k, v, cu_seqlens, scale):
        calls.append(cu_seqlens.numel() - 1)
        return real(q, k, v, cu_seqlens, scale)

    monkeypatch.setattr(va, "varlen_attention_reference", counting)
    pixels, grid_thw = pixels_for(GRIDS["t3_cut_edges"], tiny.device, tiny.dtype)
    with vision_impl(tiny.model, VISION_ATTN_NAME, "reference"):
        tower_out(tiny.model, pixels, grid_thw)
    # 3 frame groups of 5 x 7 merged units: windows of 4 x 4 units cut to 2 x 2 per frame -> 4 x 3 = 12
    assert calls == [12, 3]


def test_engine_encode_video_equals_sdpa(tiny):
    engine = Engine(tiny)
    pixels, grid_thw = pixels_for(GRIDS["t3_cut_edges"], "cpu", torch.float32, seed=1)
    with vision_impl(tiny.model, "sdpa"):
        expected = engine.encode_video(pixels, grid_thw)
    actual = engine.encode_video(pixels, grid_thw)
    assert actual.shape == (3 * 5 * 7, tiny.model.config.vision_config.out_hidden_size)
    assert_close("encode_video", actual, expected, rel_rms=1e-5, atol=1e-4)


def test_random_model_switches_both_ways():
    from omnivideo.bench.random_model import random_model

    loaded = random_model("tiny", torch.device("cpu"), quant="none")
    set_vision_attention(loaded.model, VISION_ATTN_NAME)
    assert vision_attention_of(loaded.model) == VISION_ATTN_NAME
    assert loaded.model.model.visual.blocks[1].attn.config._attn_implementation == VISION_ATTN_NAME
    set_vision_attention(loaded.model, "sdpa")
    assert vision_attention_of(loaded.model) == "sdpa"
    assert loaded.model.config.text_config._attn_implementation == "omnivideo"

# The random 7B tower in bf16 against sdpa: tests/engine/test_vision_block.py (ours is the fused block now).
