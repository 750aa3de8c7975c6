"""Frames -> Qwen2.5-VL video inputs: layout, normalisation, grid, timing, token types.

On CPU the layout is checked against transformers' torchvision-free image processor (a video of
two identical frames is what it makes of one image) and against an index-by-index reference; on a
GPU box, where torchvision exists, against transformers' own `Qwen2VLVideoProcessor`.
"""
import numpy as np
import pytest
import torch
from conftest import assert_close

from omnivideo.app.video.processor import (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, frames_to_inputs, mm_token_type_ids,
                                           to_model_inputs)

P, TPS, M = 14, 2, 2


def random_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_two_identical_frames_equal_the_image_processor():
    try:
        from transformers import Qwen2VLImageProcessorPil as ImageProcessor  # no torchvision needed
    except ImportError:  # older transformers (the GPU box): the torchvision-backed one works there
        from transformers import Qwen2VLImageProcessor as ImageProcessor

    image = random_frames(1, 56, 84)[0]
    expected = ImageProcessor()(images=[image], do_resize=False, return_tensors="pt")
    got = frames_to_inputs(np.stack([image, image]), [0.0, 0.5])
    assert torch.equal(got.video_grid_thw, expected["image_grid_thw"])
    assert_close("pixel_values", got.pixel_values_videos, expected["pixel_values"], rel_rms=1e-6, atol=1e-5)


def test_every_row_holds_its_patch_index_by_index():
    frames = random_frames(4, 56, 112, seed=1)
    got = frames_to_inputs(frames, [0.0, 0.5, 1.0, 1.5])
    t, h, w = got.video_grid_thw[0].tolist()
    assert (t, h, w) == (2, 4, 8) and got.pixel_values_videos.shape == (t * h * w, 3 * TPS * P * P)
    mean, std = np.array(OPENAI_CLIP_MEAN), np.array(OPENAI_CLIP_STD)
    row = 0
    for gt in range(t):  # rows go time, merged-block row, merged-block column, then the 2x2 inside it
        for bh in range(h // M):
            for bw in range(w // M):
                for mh in range(M):
                    for mw in range(M):
                        y, x = (bh * M + mh) * P, (bw * M + mw) * P
                        patch = frames[gt * TPS:(gt + 1) * TPS, y:y + P, x:x + P].astype(np.float64)
                        patch = (patch / 255 - mean) / std  # [tps, P, P, C]
                        expected = patch.transpose(3, 0, 1, 2).reshape(-1)  # channel, time, y, x
                        np.testing.assert_allclose(got.pixel_values_videos[row].numpy(), expected, atol=1e-5)
                        row += 1
    assert row == t * h * w


def test_odd_frame_count_repeats_the_last_frame():
    frames = random_frames(3, 28, 28, seed=2)
    padded = frames_to_inputs(np.concatenate([frames, frames[-1:]]), [0, 1, 2, 3])
    odd = frames_to_inputs(frames, [0, 1, 2])
    assert odd.video_grid_thw.tolist() == [[2, 2, 2]]
    assert torch.equal(odd.pixel_values_videos, padded.pixel_values_videos)


def test_tokens_and_seconds_per_grid_step_come_from_the_real_timestamps():
    frames = random_frames(6, 56, 84, seed=3)
    stamps = [10.0, 10.4, 10.8, 11.2, 11.6, 12.0]  # 2.5 fps in reality
    got = frames_to_inputs(frames, stamps)
    assert got.num_visual_tokens == 3 * 4 * 6 // 4
    assert got.second_per_grid_ts.dtype == torch.float32
    assert got.second_per_grid_ts.item() == pytest.approx(0.8)  # 2 frames x 0.4 s
    assert got.timestamps_s == stamps


def test_to_model_inputs_reads_a_sampled_video():
    from omnivideo.app.video import SampledVideo, SamplingPlan, VideoInfo

    info = VideoInfo("x.mp4", 2.0, 30.0, 60, 84, 56, "h264")
    plan = SamplingPlan((0.0, 0.5, 1.0, 1.5), 4, 56, 84, 2 * 2 * 3)
    sampled = SampledVideo(info, plan, random_frames(4, 56, 84, seed=4), [0.0, 0.5, 1.0, 1.5])
    inputs = to_model_inputs(sampled)
    assert inputs.num_visual_tokens == plan.visual_tokens
    assert inputs.video_grid_thw.tolist() == [list(plan.grid_thw)]


def test_mm_token_type_ids_marks_video_and_image_tokens():
    ids = torch.tensor([[5, 9, 9, 9, 6, 7, 8]])
    assert mm_token_type_ids(ids, video_token_id=9).tolist() == [[0, 2, 2, 2, 0, 0, 0]]
    assert mm_token_type_ids(ids, video_token_id=9, image_token_id=7).tolist() == [[0, 2, 2, 2, 0, 1, 0]]


@pytest.mark.gpu
def test_equal_to_transformers_video_processor():
    """Where torchvision exists: same pixels, grid and layout as `Qwen2VLVideoProcessor`."""
    from transformers import Qwen2VLVideoProcessor

    processor = Qwen2VLVideoProcessor()
    for t, h, w in [(4, 56, 84), (6, 252, 448), (3, 112, 56)]:
        frames = random_frames(t, h, w, seed=t)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)  # [T, C, H, W] uint8
        expected = processor(videos=[video], do_resize=False, do_sample_frames=False, return_tensors="pt")
        got = frames_to_inputs(frames, [i * 0.5 for i in range(t)])
        assert torch.equal(got.video_grid_thw, expected["video_grid_thw"])
        assert_close(f"pixel_values {t}x{h}x{w}", got.pixel_values_videos, expected["pixel_values_videos"],
                     rel_rms=1e-6, atol=1e-5)
