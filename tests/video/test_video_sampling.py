"""SamplingConfig validation and the pure sampling plan (no decoding)."""
import pytest

from omnivideo.errors import ConfigError, VideoError
from omnivideo.app.video import SamplingConfig, VideoInfo, plan_sampling
from omnivideo.app.video.sampling import smart_resize


def info(seconds: float, fps: float = 30.0, width: int = 1920, height: int = 1080) -> VideoInfo:
    return VideoInfo(path="x.mp4", duration_s=seconds, fps=fps, frame_count=round(seconds * fps), width=width,
                     height=height, codec="h264")


@pytest.mark.parametrize("kwargs, message", [
    ({"fps": 2.0, "nframes": 8}, "exactly one"),
    ({"fps": None}, "exactly one"),
    ({"fps": 0.0}, "fps must be"),
    ({"fps": float("nan")}, "fps must be"),
    ({"fps": None, "nframes": 1}, "nframes"),
    ({"min_frames": 10, "max_frames": 8}, "min_frames"),
    ({"min_pixels": 1000, "max_pixels": 10}, "min_pixels"),
    ({"total_pixels": 10}, "total_pixels"),
    ({"start_s": -1.0}, "start_s"),
    ({"start_s": 5.0, "end_s": 5.0}, "end_s"),
])
def test_config_rejects_bad_values_with_a_named_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SamplingConfig(**kwargs)


def test_of_turns_off_fps_when_nframes_is_given():
    assert SamplingConfig.of(nframes=16) == SamplingConfig(fps=None, nframes=16)
    assert SamplingConfig.of().fps == 2.0
    assert SamplingConfig.of(fps=1.0, max_frames=64).max_frames == 64


def test_plan_is_even_bounded_sorted_and_inside_the_video():
    for seconds in (2.0, 7.3, 95.0, 3600.0):
        plan = plan_sampling(info(seconds), SamplingConfig())
        assert plan.count % 2 == 0 and 4 <= plan.count <= 768
        assert list(plan.timestamps_s) == sorted(plan.timestamps_s) and len(plan.timestamps_s) == plan.count
        assert plan.timestamps_s[0] == 0.0 and plan.timestamps_s[-1] <= seconds
        assert plan.resized_height % 28 == 0 and plan.resized_width % 28 == 0
        t, h, w = plan.grid_thw
        assert plan.visual_tokens == t * h * w // 4


def test_two_fps_is_two_frames_per_second_until_the_cap():
    assert plan_sampling(info(60.0), SamplingConfig(fps=2.0)).count == 120
    assert plan_sampling(info(3600.0), SamplingConfig(fps=2.0)).count == 768
    assert plan_sampling(info(3600.0), SamplingConfig(fps=2.0, max_frames=100)).count == 100


def test_total_pixel_budget_shrinks_frames_as_their_number_grows():
    few = plan_sampling(info(3600.0), SamplingConfig(fps=None, nframes=32))
    many = plan_sampling(info(3600.0), SamplingConfig(fps=None, nframes=768))
    assert few.resized_height * few.resized_width > many.resized_height * many.resized_width
    # the whole video stays within the budget (qwen-vl-utils: 90% of a 128k context)
    assert many.visual_tokens <= 128000 * 0.9


def test_time_range_keeps_targets_inside_it():
    plan = plan_sampling(info(120.0), SamplingConfig(fps=1.0, start_s=30.0, end_s=50.0))
    assert plan.frame_range == (900, 1500)
    assert 30.0 <= min(plan.timestamps_s) and max(plan.timestamps_s) <= 50.0
    assert plan.count == 20


def test_impossible_requests_are_video_errors():
    with pytest.raises(VideoError, match="time range"):
        plan_sampling(info(10.0), SamplingConfig(start_s=20.0))
    with pytest.raises(VideoError, match="cannot sample 64 frames"):
        plan_sampling(info(1.0, fps=10.0), SamplingConfig(fps=None, nframes=64))
    with pytest.raises(VideoError, match="aspect ratio"):
        smart_resize(10, 3000)


def test_smart_resize_keeps_aspect_and_limits():
    h, w = smart_resize(1080, 1920, 28, 128 * 784, 768 * 784)  # shrunk to the maximum
    assert h % 28 == 0 and w % 28 == 0 and h * w <= 768 * 784 and (h + 28) * (w + 28) > 768 * 784
    assert abs(w / h - 16 / 9) < 0.05
    h, w = smart_resize(90, 160, 28, 128 * 784, 768 * 784)  # upscaled to the minimum
    assert h * w >= 128 * 784 and abs(w / h - 16 / 9) < 0.1
