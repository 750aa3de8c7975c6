"""Frames -> Qwen3-VL inputs against transformers' own Qwen3VLVideoProcessor / Qwen3VLProcessor (torchvision:
the GPU box, `bash scripts/gpu/qwen3_vl.sh`): pixels, grid, and the prompt with its `<t seconds>` text."""
import numpy as np
import pytest
import torch
from conftest import assert_close

from omnivideo.app.video.processor import frames_to_inputs
from omnivideo.engine.family import VideoLayout, family_named
from omnivideo.engine.prompt import ChatFormat

SPEC = family_named("qwen3_vl").processor
SHAPES = [(4, 64, 96), (6, 256, 448), (5, 128, 64)]   # sides multiples of 32; an odd frame count is padded


def _frames(t, h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def _ours(frames):
    return frames_to_inputs(frames, [i * 0.5 for i in range(len(frames))], patch_size=SPEC.patch_size,
                            temporal_patch_size=SPEC.temporal_patch_size, merge_size=SPEC.merge_size,
                            image_mean=SPEC.image_mean, image_std=SPEC.image_std)


@pytest.mark.gpu
def test_pixels_and_grid_equal_qwen3vl_video_processor():
    from transformers import Qwen3VLVideoProcessor

    processor = Qwen3VLVideoProcessor()
    for t, h, w in SHAPES:
        frames = _frames(t, h, w, seed=t)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)
        expected = processor(videos=[video], do_resize=False, do_sample_frames=False, return_tensors="pt")
        got = _ours(frames)
        assert torch.equal(got.video_grid_thw, expected["video_grid_thw"])
        assert_close(f"pixel_values {t}x{h}x{w}", got.pixel_values_videos, expected["pixel_values_videos"],
                     rel_rms=1e-6, atol=1e-5)


@pytest.mark.gpu
def test_prompt_ids_equal_qwen3vl_processor(tiny_qwen3_vl):
    """The whole prefix (timestamps from frame indices / fps, one wrapper per frame group) token for token."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    tokenizer = tiny_qwen3_vl.tokenizer
    processor = Qwen3VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(), chat_template=tokenizer.chat_template)
    chat = ChatFormat(tokenizer, family=tiny_qwen3_vl.family)
    for (t, h, w), fps in zip(SHAPES, (30.0, 23.976, 10.0)):
        frames = _frames(t, h, w, seed=t)
        indices = [3 * i + 1 for i in range(t)]
        meta = VideoMetadata(total_num_frames=3 * t + 2, fps=fps, width=w, height=h, frames_indices=list(indices))
        got_inputs = _ours(frames)
        layout = VideoLayout.from_frames(got_inputs.video_grid_thw[0].tolist(), SPEC.merge_size,
                                         [i / fps for i in indices], SPEC.temporal_patch_size)
        expected = processor(text=[chat.pieces.prefix_text], videos=[torch.from_numpy(frames).permute(0, 3, 1, 2)],
                             video_metadata=[meta], do_resize=False, do_sample_frames=False, return_tensors="pt")
        assert expected["input_ids"][0].tolist() == chat.video_prefix_ids(layout), f"{t}x{h}x{w} at {fps} fps"
