"""Qwen3-VL (dense; the MoE variant shares every method here): timestamp text per frame group, DeepStack.

What differs from Qwen2.5-VL (omnivideo/engine/family/qwen2_5_vl.py):
- processor: patch 16 (a merged token covers 32x32 px of two frames), mean = std = 0.5 per channel, and
  each temporal frame group is written as `<{t:.1f} seconds><|vision_start|>` + pads + `<|vision_end|>`
  (transformers' Qwen3VLProcessor.replace_video_token; t = the mean time of the group's two frames);
- positions: `get_rope_index` splits the grid into one grid per frame group, each with temporal index 0
  after the text before it: the timestamp tokens carry time, not the temporal axis (interleaved M-RoPE,
  mrope_section [24, 20, 20], theta 5e6, handled inside the model's own rotary embedding);
- DeepStack: the tower also returns the features of a few of its layers (8 / 16 / 24 for the 8B), each
  merged to the LLM width; feature i is added to the hidden states at the video tokens after decoder
  layer i. A chunked prefill adds each chunk's own rows (`ModelFamily.inject`, same ops as transformers);
- sparse prefill: the timestamp and vision start/end tokens between frame groups count as part of the
  video for the dense-block rule (otherwise nearly every query block would hold text and stay dense);
- fused rewrites: the vision tower on our varlen attention with Qwen3-VL's own fused block (LayerNorm,
  gateless GELU MLP: omnivideo/engine/fused/qwen3_vision_block.py), text norms (q_norm / k_norm too), rotary
  (this family's modeling module), SiLU*up and the NF4 GEMV.
"""
import sys

import torch

from omnivideo.engine.family.base import ModelFamily, ProcessorSpec, VideoLayout
from omnivideo.engine.fused.nf4_linear import route_nf4_linears
from omnivideo.engine.fused.text_mlp import fuse_text_mlp
from omnivideo.engine.fused.text_norm import fuse_text_norms
from omnivideo.engine.fused.text_rotary import fuse_text_rotary
from omnivideo.engine.fused.vision_tower import VISION_ATTN_NAME, set_vision_attention
from omnivideo.errors import ConfigError

IMAGENET_STANDARD_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STANDARD_STD = (0.5, 0.5, 0.5)
VIDEO_WRAPPER = "<|vision_start|><|video_pad|><|vision_end|>"


def timestamp_text(seconds: float) -> str:
    """The text before a frame group, exactly as Qwen3VLProcessor writes it."""
    return f"<{seconds:.1f} seconds>"


class Qwen3VLFamily(ModelFamily):
    name = "qwen3_vl"
    model_types = ("qwen3_vl", "qwen3_vl_moe")
    processor = ProcessorSpec(patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=IMAGENET_STANDARD_MEAN,
                              image_std=IMAGENET_STANDARD_STD, timestamps=True)

    def deepstack_layers(self, model) -> int:
        return len(model.config.vision_config.deepstack_visual_indexes)

    def prefix_ids(self, chat, layout: VideoLayout) -> list[int]:
        """The template's video wrapper becomes one `<t seconds>` + wrapper per frame group (the processor's
        expansion); the text is encoded once with one pad per group, then each pad is expanded to the group's
        tokens (pads are special tokens: the same ids as encoding the expanded text)."""
        if len(layout.group_times_s) != layout.grid_thw[0]:
            raise ConfigError(f"Qwen3-VL prompts need one time per frame group: {len(layout.group_times_s)} "
                              f"times for {layout.grid_thw[0]} groups")
        text = chat.pieces.prefix_text
        if text.count(VIDEO_WRAPPER) != 1:
            raise ConfigError(f"the chat template must wrap the video as {VIDEO_WRAPPER}")
        frames = "".join(timestamp_text(t) + VIDEO_WRAPPER for t in layout.group_times_s)
        ids = chat.encode(text.replace(VIDEO_WRAPPER, frames))
        out, per_group = [], layout.tokens_per_group
        for i in ids:
            out.extend([i] * per_group if i == chat.video_pad_id else [i])
        return out

    def rope_index(self, model, ids, is_video, grid_thw, second_per_grid_t):
        # the seconds per grid step are not used: time is in the text (no wait for the last frame's timestamp)
        positions, deltas = model.model.get_rope_index(
            ids, mm_token_type_ids=is_video.int() * 2, video_grid_thw=torch.tensor([list(grid_thw)], device=ids.device))
        return positions, int(deltas.reshape(-1)[0])

    def sparse_text_mask(self, ids, is_video, config):
        video = is_video[0]
        mask = ~video
        at = torch.nonzero(video).flatten()
        if at.numel():
            first, last = int(at[0]), int(at[-1])
            start = first - 1 if first > 0 and int(ids[0, first - 1]) == config.vision_start_token_id else first
            end = last + 1 if last + 1 < video.numel() and int(ids[0, last + 1]) == config.vision_end_token_id else last
            # the first group's timestamp precedes its vision_start: it stays text (a short, dense block at worst)
            mask[start:end + 1] = False
        return mask

    def encode_video(self, model, pixel_values, grid_thw):
        out = model.model.get_video_features(pixel_values, grid_thw)
        embeds = torch.cat(out.pooler_output, dim=0)
        return torch.cat([embeds, *(torch.cat(f, dim=0) for f in out.deepstack_features)], dim=-1)

    def fuse(self, model, quantization: str) -> None:
        set_vision_attention(model, VISION_ATTN_NAME)   # one varlen launch + one rotary kernel per block
        fuse_text_norms(model)
        # the modeling module of the class itself: qwen3_vl or qwen3_vl_moe, each with its own rotary function
        fuse_text_rotary(model, sys.modules[type(model).__module__])
        fuse_text_mlp(model)
        if quantization == "nf4":
            route_nf4_linears(model)
