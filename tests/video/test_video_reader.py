"""Reading real files by presentation time: probe figures, PTS, frame content, rotation, range.

Ground truth is ffprobe (packet PTS, container duration) and the barcode each corpus frame carries.
"""
import subprocess
import tracemalloc

import numpy as np
import pytest
from video_corpus import FFMPEG, ffprobe_duration, ffprobe_json, ffprobe_pts, read_barcode
from video_corpus import corpus  # noqa: F401  (session fixture)

from omnivideo.app.video import SamplingConfig, plan_sampling, probe_video, sample_video
from omnivideo.app.video.reader import VideoReader

CODECS = {"h264": "h264", "hevc": "hevc", "vp9": "vp9", "mjpeg": "mjpeg", "vfr": "h264"}


def local_gap(pts: np.ndarray, k: int) -> float:
    """Spacing around frame k (the smaller neighbour gap): 'half a frame' is half of this."""
    gaps = np.diff(pts)
    return float(min(gaps[max(k - 1, 0)], gaps[min(k, len(gaps) - 1)]))


def check_frames(name, stamps, frames, targets, pts, bar, scale, period_frames):
    """Each returned PTS is an ffprobe PTS, is the nearest frame to its target, and shows that frame."""
    for target, stamp, frame in zip(targets, stamps, frames):
        k = int(np.argmin(np.abs(pts - stamp)))
        half = local_gap(pts, k) / 2
        assert abs(pts[k] - stamp) < half, f"{name}: PTS {stamp} is no ffprobe frame time (nearest {pts[k]})"
        nearest = np.min(np.abs(pts - target))
        assert abs(stamp - target) <= nearest + 1e-3, f"{name}: target {target}: got {stamp}, a nearer frame exists"
        assert read_barcode(frame, bar, scale) == k % period_frames, f"{name}: frame at {stamp} s shows another frame"


@pytest.mark.parametrize("name", list(CODECS))
def test_probe_matches_ffprobe(corpus, name):
    clip = corpus.clips[name]
    info = probe_video(clip.path)
    stream = ffprobe_json(clip.path, "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height")
    stream = stream["streams"][0]
    assert info.codec == CODECS[name] == stream["codec_name"]
    assert (info.width, info.height) == (stream["width"], stream["height"])
    assert info.frame_count == len(ffprobe_pts(clip.path))
    assert info.duration_s == pytest.approx(ffprobe_duration(clip.path), rel=0.01)


@pytest.mark.parametrize("name", list(CODECS))
def test_sampled_frames_are_the_frames_at_their_real_timestamps(corpus, name):
    clip = corpus.clips[name]
    pts = ffprobe_pts(clip.path)
    sampled = sample_video(clip.path, SamplingConfig(fps=3.0))
    scale = sampled.plan.resized_width / sampled.info.width
    assert sampled.frames.shape == (sampled.plan.count, sampled.plan.resized_height, sampled.plan.resized_width, 3)
    check_frames(name, sampled.timestamps_s, sampled.frames, sampled.plan.timestamps_s, pts, clip.bar, scale, 4096)


def test_variable_frame_rate_uses_real_time_not_frame_index(corpus):
    clip = corpus.clips["vfr"]
    pts = ffprobe_pts(clip.path)  # 0-2 s at 30 fps, 2-8 s at 10 fps, 8-10 s at 30 fps
    targets = [0.5, 2.95, 4.0, 5.04, 7.5, 8.5, 9.9, 9.9]
    with VideoReader(clip.path) as reader:
        got = list(reader.frames_at(targets))
    stamps = [pts_s for pts_s, _ in got]
    check_frames("vfr", stamps, [rgb for _, rgb in got], targets, pts, clip.bar, 1.0, 4096)
    # index x average fps would put 5.04 s at frame 91 (5.04 * 18); the real frame there is 90
    assert read_barcode(got[3][1], clip.bar) == 90 and stamps[3] == pytest.approx(5.0, abs=1e-3)


def test_rotation_metadata_is_applied_like_ffmpeg(corpus):
    clip = corpus.clips["rotated"]
    info = probe_video(clip.path)
    side = ffprobe_json(clip.path, "-select_streams", "v:0", "-show_entries", "stream_side_data=rotation")
    ccw = side["streams"][0]["side_data_list"][0]["rotation"]  # display matrix: counter-clockwise degrees
    assert info.rotation == (360 - ccw) % 360 != 0 and (info.width, info.height) == (240, 320)
    sampled = sample_video(clip.path, SamplingConfig(fps=None, nframes=4))
    assert sampled.plan.resized_height > sampled.plan.resized_width
    with VideoReader(clip.path) as reader:
        pts_s, ours = reader.frame_near(2.0)
    raw = subprocess.run([FFMPEG, "-v", "error", "-ss", f"{pts_s}", "-i", str(clip.path), "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    theirs = np.frombuffer(raw, np.uint8).reshape(320, 240, 3)  # ffmpeg autorotates too
    assert np.abs(theirs.astype(int) - ours).mean() < 2.0


def test_time_range_is_honoured(corpus):
    clip = corpus.clips["h264"]
    sampled = sample_video(clip.path, SamplingConfig(fps=4.0, start_s=1.5, end_s=4.0))
    assert sampled.plan.count == 10
    assert 1.5 <= min(sampled.timestamps_s) and max(sampled.timestamps_s) <= 4.0


def test_long_1080p_video_sparse_sampling_in_bounded_memory(corpus):
    clip = corpus.clips["long"]
    info = probe_video(clip.path)
    assert info.duration_s >= 600 and info.duration_s == pytest.approx(ffprobe_duration(clip.path), rel=0.01)
    assert (info.width, info.height) == (1920, 1080)
    tracemalloc.start()  # numpy reports its buffers to tracemalloc; OpenCV's own are bounded by design
    try:
        sampled = sample_video(clip.path, SamplingConfig(fps=None, nframes=8), info=info, workers=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    full_frame = 1920 * 1080 * 3  # holding the 8 decoded frames would be 8 of these on top
    assert peak < sampled.frames.nbytes + 4 * full_frame, f"peak {peak / 1e6:.1f} MB"  # 1 per reader + slack
    pts = ffprobe_pts(clip.path)
    scale = sampled.plan.resized_width / info.width
    segment_frames = 20 * 25  # the file repeats one 20 s segment: barcodes count within it
    check_frames("long", sampled.timestamps_s, sampled.frames, sampled.plan.timestamps_s, pts, clip.bar, scale,
                 segment_frames)


def test_progress_reports_every_frame_and_cancel_stops(corpus):
    from omnivideo.errors import VideoCancelled
    from omnivideo.app.video import CancelToken

    clip = corpus.clips["h264"]
    calls = []
    sample_video(clip.path, SamplingConfig(fps=None, nframes=6), progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 1, "probe") and calls[-1] == (6, 6, "sample")
    assert [c[0] for c in calls if c[2] == "sample"] == list(range(7))

    token = CancelToken()

    def cancel_after_three(done, total, stage):
        if stage == "sample" and done == 3:
            token.cancel()

    with pytest.raises(VideoCancelled):
        sample_video(clip.path, SamplingConfig(fps=None, nframes=6), progress=cancel_after_three, cancel=token)


def test_a_set_threading_event_cancels_before_any_frame(corpus):
    import threading

    from omnivideo.errors import VideoCancelled

    done = threading.Event()
    done.set()
    with pytest.raises(VideoCancelled, match="cancelled"):
        sample_video(corpus.clips["h264"].path, SamplingConfig(), cancel=done)


def test_parallel_readers_return_the_same_frames_as_one(corpus):
    clip = corpus.clips["vfr"]
    one = sample_video(clip.path, SamplingConfig(fps=2.0), workers=1)
    three = sample_video(clip.path, SamplingConfig(fps=2.0), workers=3)
    assert one.timestamps_s == three.timestamps_s
    assert np.array_equal(one.frames, three.frames)


def test_probe_reports_real_frame_times_on_a_variable_frame_rate_file(corpus):
    """`probe`'s sampled times are ffprobe PTS and the very frames sampling takes (not index / average fps)."""
    from omnivideo.app.video import probe_report

    clip = corpus.clips["vfr"]
    pts = ffprobe_pts(clip.path)
    cfg = SamplingConfig(fps=2.0)
    reported = probe_report(clip.path, cfg, gpu_memory_bytes=None)["sampled"]["timestamps_s"]
    assert all(np.min(np.abs(pts - t)) < 1e-3 for t in reported), "a reported time is no frame's PTS"
    assert reported == pytest.approx(sample_video(clip.path, cfg).timestamps_s, abs=1e-4)
    planned = plan_sampling(probe_video(clip.path), cfg).timestamps_s
    assert max(np.min(np.abs(pts - t)) for t in planned) > 0.01   # the plan's own times are not frame times here
