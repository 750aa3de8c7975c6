"""Who may connect and which files the server hands out: CLI refusals, and real HTTP requests."""
import shutil
import subprocess
import sys

import pytest
from ui_testkit import REPO, cli_env, free_port, http_status, make_h264

from omnivideo.app.app import App
from omnivideo.app.config import AppConfig
from omnivideo.errors import ConfigError
from omnivideo.ui.access import FileAccess, ServeOptions, parse_auth
from omnivideo.ui.server import launch


def test_parse_auth():
    assert parse_auth("me:se:cret") == ("me", "se:cret")
    for bad in ("me", ":pw", "me:", ""):
        with pytest.raises(ConfigError, match="user:password"):
            parse_auth(bad)


def test_exposing_needs_auth():
    assert not ServeOptions().exposed
    assert ServeOptions(host="0.0.0.0", auth=("u", "p")).exposed
    with pytest.raises(ConfigError, match="refusing to serve on 0.0.0.0"):
        ServeOptions(host="0.0.0.0")
    with pytest.raises(ConfigError, match="public share link"):
        ServeOptions(share=True)
    with pytest.raises(ConfigError, match="--port"):
        ServeOptions(port=70000)


@pytest.mark.parametrize("args, message", [
    (["--host", "0.0.0.0"],
     "error: refusing to serve on 0.0.0.0 (other machines can connect) without --auth user:password"),
    (["--share"], "error: refusing to serve on a public share link without --auth user:password"),
    (["--host", "0.0.0.0", "--auth", "nopassword"], "error: --auth must be user:password (both non-empty)"),
])
def test_cli_refuses_to_expose_without_auth(tmp_path, args, message):
    port = free_port()
    r = subprocess.run([sys.executable, str(REPO / "launcher.py"), "serve", "--model", "tiny", "--port", str(port),
                        *args], cwd=REPO, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [message]
    assert "Running on" not in r.stdout + r.stderr


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A real server (in this process) on a free port over a data dir with one kept upload."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "unused"))  # launch() repoints it; restored after
    data = tmp_path / "data"
    make_h264(tmp_path / "clip.mp4", seconds=1, size="64x48")
    (data / "videos").mkdir(parents=True)
    shutil.copy(tmp_path / "clip.mp4", data / "videos" / "kept.mp4")
    (data / "cache").mkdir()
    (data / "cache" / "layer-0.safetensors").write_bytes(b"kv bytes")
    app = App(AppConfig(data_dir=data, model="tiny"))
    demo, url = launch(app, ServeOptions(port=free_port()), block=False, quiet=True)
    yield demo, url.rstrip("/"), data
    demo.close()
    app.close()


def test_file_access_is_limited_to_added_videos(served, tmp_path):
    demo, url, data = served

    def get(path):
        return http_status(f"{url}/gradio_api/file={path}")

    assert get("/etc/passwd") == 403
    assert get(data / "cache" / "layer-0.safetensors") == 403     # the KV cache is never served
    assert get(data / "videos" / "kept.mp4") == 200               # kept uploads are
    outside = tmp_path / "clip.mp4"
    assert get(outside) == 403
    demo.workspace.access.allow(outside)                          # what adding a local video does
    assert get(outside) == 200
    shutil.copy(outside, tmp_path / "sibling.mp4")
    assert get(tmp_path / "sibling.mp4") == 403                   # one file, not its folder


def test_file_access_allows_files_never_folders(tmp_path):
    access = FileAccess(tmp_path)
    access.allow(tmp_path)                  # a directory: ignored
    access.allow(tmp_path / "missing.mp4")  # not a file (yet): ignored
    (tmp_path / "a.mp4").write_bytes(b"x")
    access.allow(tmp_path / "a.mp4")
    access.allow(tmp_path / "a.mp4")
    assert access.paths == [str(tmp_path.resolve() / n) for n in ("videos", "playback", "a.mp4")]
    assert access.allows(tmp_path / "videos" / "b.mp4") and not access.allows(tmp_path / "b.mp4")


def test_auth_is_enforced(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "unused"))
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "v.mp4").write_bytes(b"not really a video")
    app = App(AppConfig(data_dir=tmp_path, model="tiny"))
    demo, url = launch(app, ServeOptions(port=free_port(), auth=("me", "secret")), block=False, quiet=True)
    try:
        url = url.rstrip("/")
        assert http_status(f"{url}/gradio_api/file={tmp_path / 'videos' / 'v.mp4'}") in (401, 403)
        assert http_status(f"{url}/config") in (401, 403)
    finally:
        demo.close()
        app.close()
