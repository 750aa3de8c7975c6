"""Qwen2.5-VL (and Qwen2-VL): one `<|video_pad|>` run per video, M-RoPE with absolute seconds per grid step.

- processor: patch 14 (a merged token covers 28x28 px of two frames), OpenAI-CLIP normalisation, no text
  between frame groups;
- prompt: `<|vision_start|>` + N x `<|video_pad|>` + `<|vision_end|>` (ChatFormat.prefix_ids);
- positions: `get_rope_index` with `second_per_grid_ts` (temporal index = seconds x tokens_per_second);
- visual features: the merger's output replaces the video tokens, nothing is added later;
- fused rewrites: our vision tower (varlen attention, fused blocks), text norms, rotary, SiLU*up, NF4 GEMV.
"""
import torch
from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl

from omnivideo.engine.family.base import ModelFamily, ProcessorSpec, VideoLayout
from omnivideo.engine.fused.nf4_linear import route_nf4_linears
from omnivideo.engine.fused.text_mlp import fuse_text_mlp
from omnivideo.engine.fused.text_norm import fuse_text_norms
from omnivideo.engine.fused.text_rotary import fuse_text_rotary
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, set_vision_attention

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Qwen2_5_VLFamily(ModelFamily):
    name = "qwen2_5_vl"
    model_types = ("qwen2_5_vl", "qwen2_vl")
    processor = ProcessorSpec(patch_size=14, temporal_patch_size=2, merge_size=2, image_mean=OPENAI_CLIP_MEAN,
                              image_std=OPENAI_CLIP_STD, timestamps=False)
    modeling = modeling_qwen2_5_vl

    def prefix_ids(self, chat, layout: VideoLayout) -> list[int]:
        return chat.prefix_ids(layout.num_visual_tokens)

    def rope_index(self, model, ids, is_video, grid_thw, second_per_grid_t):
        spg = torch.tensor([second_per_grid_t()], dtype=torch.float32, device=ids.device)
        positions, deltas = model.model.get_rope_index(
            ids, mm_token_type_ids=is_video.int() * 2, video_grid_thw=torch.tensor([list(grid_thw)], device=ids.device),
            second_per_grid_ts=spg)
        return positions, int(deltas.reshape(-1)[0])

    def fuse(self, model, quantization: str) -> None:
        set_vision_attention(model, VISION_ATTN_NAME)
        fuse_text_norms(model)    # one kernel per RMSNorm (omnivideo/engine/fused/text_norm.py; exact)
        fuse_text_rotary(model, self.modeling)  # one rotary kernel per layer on CUDA (fused/text_rotary.py)
        fuse_text_mlp(model)      # SiLU * up in one kernel over the fused gate|up GEMV (fused/text_mlp.py)
        if quantization == "nf4":
            route_nf4_linears(model)  # decode-time NF4 GEMV (the kernel switch decides per call)
