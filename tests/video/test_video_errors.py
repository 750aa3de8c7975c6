"""Files that cannot be sampled are refused with one clear line (a VideoError), never a traceback."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from video_corpus import corpus  # noqa: F401  (session fixture)

from omnivideo.errors import VideoError
from omnivideo.app.video import SamplingConfig, probe_report, probe_video, sample_video
from omnivideo.app.video.reader import REENCODE_HINT

EXPECTED = {
    "empty": "the file is empty (0 bytes)",
    "text": "not a video: the file contains text",
    "truncated": "truncated",
    "truncated_indexed": "truncated",
    "audio_only": "no video stream",
    "audio_only_webm": "no video stream",
    "audio": "no video stream",
    "a_directory": "is a directory",
}


def refused(path) -> str:
    with pytest.raises(VideoError) as caught:
        probe_video(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)), message
    return message


@pytest.mark.parametrize("name", list(EXPECTED))
def test_broken_file_is_refused_with_its_reason(corpus, name):
    path = corpus.broken[name]
    assert EXPECTED[name] in refused(path)
    with pytest.raises(VideoError, match=re.escape(EXPECTED[name])):
        sample_video(path, SamplingConfig())


def test_missing_path(tmp_path):
    assert "no such file" in refused(tmp_path / "nope.mp4")


def _opencv_decodes(path: Path) -> bool:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return cap.isOpened() and cap.grab()
    finally:
        cap.release()


def test_undecodable_codec_gets_a_reencode_hint(corpus):
    path = corpus.broken["av1"]
    if _opencv_decodes(path):  # an OpenCV build with an AV1 decoder: then it must simply work
        assert probe_video(path).codec == "av1"
        return
    message = refused(path)
    assert "av1" in message and REENCODE_HINT in message
    assert "ffmpeg -i IN -c:v libx264 OUT.mp4" in message


def test_unreadable_file_is_a_permission_error(corpus, tmp_path):
    """chmod 000 stops everyone but root; as root the probe runs in a child without DAC override."""
    path = tmp_path / "locked.mp4"
    shutil.copy(corpus.clips["h264"].path, path)
    path.chmod(0o000)
    try:
        if os.geteuid() != 0:
            assert "permission denied" in refused(path)
            return
        setpriv = shutil.which("setpriv")  # util-linux: drop the capabilities that let root read anything
        if setpriv is None:
            pytest.skip("running as root without util-linux setpriv: no way to make a file unreadable")
        drop = "-dac_override,-dac_read_search"
        code = ("import sys\nfrom omnivideo.errors import VideoError\nfrom omnivideo.app.video import probe_video\n"
                "try:\n    probe_video(sys.argv[1])\nexcept VideoError as e:\n    print(e)\n")
        run = subprocess.run([setpriv, "--bounding-set", drop, "--inh-caps", drop, "--", sys.executable, "-c", code,
                              str(path)], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.strip() == f"{path}: permission denied (the file is not readable by this user)"
    finally:
        path.chmod(0o644)


def test_probe_report_refuses_like_probe(corpus):
    with pytest.raises(VideoError, match="contains text"):
        probe_report(corpus.broken["text"], SamplingConfig(), model="tiny")


def test_a_reader_error_reaches_the_caller(corpus):
    """Frames missing behind a header the probe was not asked about: the reader's error surfaces."""
    from omnivideo.app.video import VideoInfo

    path = corpus.broken["truncated_indexed"]
    claimed = VideoInfo(str(path), 6.0, 30.0, 180, 320, 240, "h264")  # what the index promises
    with pytest.raises(VideoError, match="truncated"):
        sample_video(path, SamplingConfig(fps=2.0), info=claimed, workers=2)
