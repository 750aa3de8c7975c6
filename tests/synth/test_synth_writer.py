"""Written files are real videos the app reads back as (nearly) the rendered frames."""
import shutil

import numpy as np
import pytest

from omnivideo.app.video.frames import sample_video
from omnivideo.app.video.info import probe_video
from omnivideo.app.video.sampling import SamplingConfig
from omnivideo.errors import ConfigError
from omnivideo.synth.render import render_frame
from omnivideo.synth.scene import make_spec
from omnivideo.synth.writer import write_video

CODECS = ["mp4v"] + (["h264"] if shutil.which("ffmpeg") else [])


@pytest.mark.parametrize("codec", CODECS)
def test_decoded_frames_match_the_render(tmp_path, codec):
    spec = make_spec(4, 20)
    written = write_video(spec, tmp_path / "v.mp4", fps=10, codec=codec)
    assert written.codec == codec and written.frames == 200
    info = probe_video(written.path)
    assert info.width == info.height == 448 and info.frame_count == 200 and abs(info.fps - 10) < 1e-6
    sampled = sample_video(written.path, SamplingConfig())
    assert sampled.frames.shape == (40, 448, 448, 3)        # 2 fps, resized size unchanged
    errors = [np.abs(f.astype(np.int16) - render_frame(spec, t)).mean()
              for f, t in zip(sampled.frames, sampled.timestamps_s)]
    assert max(errors) < (2.5 if codec == "h264" else 4.0), errors
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"], "no temp file left behind"


def test_rendered_and_decoded_times_agree(tmp_path):
    spec = make_spec(6, 12)
    written = write_video(spec, tmp_path / "v.mp4", fps=10, codec="mp4v")
    sampled = sample_video(written.path, SamplingConfig(fps=2.0))
    assert np.allclose(sampled.timestamps_s, sampled.plan.timestamps_s, atol=1e-3)


def test_bad_targets_are_config_errors(tmp_path):
    spec = make_spec(1, 8)
    with pytest.raises(ConfigError, match="does not exist"):
        write_video(spec, tmp_path / "missing" / "v.mp4")
    with pytest.raises(ConfigError, match="directory"):
        write_video(spec, tmp_path)
    with pytest.raises(ConfigError):
        write_video(spec, tmp_path / "v.mp4", fps=0)
    with pytest.raises(ConfigError):
        write_video(spec, tmp_path / "v.mp4", codec="vp9")
