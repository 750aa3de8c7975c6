"""Uploads are kept in the data dir: same bytes reuse the kept file, a different file with the same name
gets its own name, and a missing upload is a clear error; a rejected upload is deleted, nothing else."""
import pytest

from omnivideo.errors import VideoError
from omnivideo.ui.uploads import discard, keep_upload, keep_upload_once


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


def test_keep_upload_once_says_whether_it_made_the_file(tmp_path):
    videos = tmp_path / "videos"
    up = tmp_path / "up" / "match.mp4"
    up.parent.mkdir()
    up.write_bytes(b"video bytes")
    assert keep_upload_once(up, videos) == (videos / "match.mp4", True)
    assert keep_upload_once(up, videos) == (videos / "match.mp4", False)     # the same bytes were kept before


def test_discard_deletes_only_inside_its_folder(tmp_path):
    uploads = tmp_path / "gradio"
    junk = uploads / "3f2a" / "notes.mp4"
    junk.parent.mkdir(parents=True)
    junk.write_text("not a video")
    outside = tmp_path / "mine.mp4"
    outside.write_text("the user's own file")
    assert discard(outside, inside=uploads) is False and outside.exists()   # a typed path is never deleted
    assert discard(None, inside=uploads) is False
    assert discard(junk, inside=uploads) is True
    assert not junk.exists() and not junk.parent.exists() and uploads.exists()   # its own folder goes too
    assert discard(junk, inside=uploads) is False
