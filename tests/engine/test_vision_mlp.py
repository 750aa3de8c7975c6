"""Padding the vision MLP width (omnivideo/engine/fused/vision_mlp.py) changes no output and is undone exactly."""
import torch
from transformers import Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel

from omnivideo.engine.fused.vision_mlp import pad_vision_mlp, unpad_vision_mlp


def _tower(width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    config = Qwen2_5_VLVisionConfig(depth=2, hidden_size=160, intermediate_size=width, num_heads=2,
                                    out_hidden_size=64, fullatt_block_indexes=[1])
    return Qwen2_5_VisionTransformerPretrainedModel(config).eval()


def test_padding_keeps_every_block_output_and_unpad_restores_the_layers():
    tower = _tower(width=342)                     # like the 7B's 3420: not a multiple of 8
    x = torch.randn(50, 160)
    mlps = [b.mlp for b in tower.blocks]
    originals = [(m.gate_proj, m.up_proj, m.down_proj) for m in mlps]
    before = [m(x) for m in mlps]
    assert pad_vision_mlp(tower) == 2 and pad_vision_mlp(tower) == 0          # idempotent
    assert all(m.gate_proj.out_features == m.up_proj.out_features == m.down_proj.in_features == 384 for m in mlps)
    for m, ref in zip(mlps, before):
        torch.testing.assert_close(m(x), ref, rtol=1e-6, atol=1e-6)
    assert unpad_vision_mlp(tower) == 2
    assert [(m.gate_proj, m.up_proj, m.down_proj) for m in mlps] == originals


def test_widths_already_aligned_are_left_alone():
    tower = _tower(width=256)
    assert pad_vision_mlp(tower) == 0 and unpad_vision_mlp(tower) == 0
    assert tower.blocks[0].mlp.gate_proj.out_features == 256
