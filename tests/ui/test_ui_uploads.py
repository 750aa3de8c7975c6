"""Uploads are kept in the data dir: same bytes reuse the kept file, a different file with the same name
gets its own name, and a missing upload is a clear error."""
import pytest

from omnivideo.errors import VideoError
from omnivideo.ui.uploads import keep_upload


def test_keep_upload(tmp_path):
    videos = tmp_path / "data" / "videos"
    first = tmp_path / "up1" / "match.mp4"
    first.parent.mkdir()
    first.write_bytes(b"first video bytes")
    kept = keep_upload(first, videos)
    assert kept == videos / "match.mp4" and kept.read_bytes() == b"first video bytes"
    assert keep_upload(first, videos) == kept                      # same bytes: the kept file
    other = tmp_path / "up2" / "match.mp4"
    other.parent.mkdir()
    other.write_bytes(b"other video bytes")                        # same size, other content
    assert keep_upload(other, videos) == videos / "match-1.mp4"
    assert keep_upload(other, videos) == videos / "match-1.mp4"
    first.unlink()                                                 # Gradio may clean its temp files
    assert kept.read_bytes() == b"first video bytes"
    assert sorted(p.name for p in videos.iterdir()) == ["match-1.mp4", "match.mp4"]   # no .part left


def test_missing_upload(tmp_path):
    with pytest.raises(VideoError, match="did the upload finish"):
        keep_upload(tmp_path / "gone.mp4", tmp_path / "videos")
