"""Browser-playable copies: H.264 .mp4 is shown as is; OpenCV's mp4v is converted once and kept."""
from ui_testkit import make_h264

from omnivideo.app.sample_video import make_sample_video
from omnivideo.app.video import probe_video
from omnivideo.ui.playback import Playback


def test_playable_copies(tmp_path):
    playback = Playback(tmp_path / "playback")
    h264 = make_h264(tmp_path / "clip.mp4", seconds=1, size="64x48")
    assert playback.playable(h264) == h264
    mp4v = make_sample_video(tmp_path / "cv.mp4", seconds=1.0)
    assert probe_video(mp4v).codec not in ("h264", "av1")

    copy = playback.playable(mp4v)
    assert copy.parent == tmp_path / "playback" and copy.suffix == ".mp4" and copy != mp4v
    info, original = probe_video(copy), probe_video(mp4v)
    assert info.codec == "h264" and (info.width, info.height) == (original.width, original.height)
    assert abs(info.duration_s - original.duration_s) < 0.2
    stamp = copy.stat().st_mtime_ns
    assert playback.playable(mp4v) == copy and copy.stat().st_mtime_ns == stamp     # kept, not redone
    assert not any((tmp_path / "playback" / "work").iterdir())                    # no leftovers
