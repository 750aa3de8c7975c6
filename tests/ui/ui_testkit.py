"""Shared helpers for the UI tests: free ports, H.264 clips (Debian ffmpeg), `launcher.py serve` processes,
and fixtures that test modules import: `clips` / `ws` (a Workspace over a real App: tiny model, fresh
store) and `browser` (Playwright's chromium driving Debian's chromium binary)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_h264(path: Path, seconds: int = 6, size: str = "320x240", rate: int = 10) -> Path:
    """A browser-playable test clip (testsrc2 shows its own clock, so seeks are visible in screenshots)."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={rate}:duration={seconds}", "-c:v", "libx264", "-preset", "veryfast",
                    "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)], check=True, timeout=60)
    return path


def http_status(url: str, auth_cookie: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Cookie": auth_cookie} if auth_cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def cli_env(data_dir: Path) -> dict:
    return dict(os.environ, OMNIVIDEO_HOME=str(data_dir), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")


class ServeProcess:
    """`python launcher.py serve --model tiny --port PORT` in a subprocess; always stopped on exit."""

    def __init__(self, data_dir: Path, port: int, *extra: str, log: Path | None = None):
        self.port, self.url = port, f"http://127.0.0.1:{port}/"
        self.log_path = log or data_dir.parent / f"serve-{port}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "launcher.py"), "serve", "--model", "tiny",
                                      "--port", str(port), *extra], cwd=REPO, env=cli_env(data_dir),
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 60.0) -> "ServeProcess":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http_status(self.url) == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"serve did not answer on {self.url} within {timeout_s} s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)   # its own session: the server and nothing else
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None:   # pytest shows this with the failure
            print(f"--- serve log ({self.url}) ---\n{self.log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return make_h264(d / "a.mp4", seconds=4), make_h264(d / "b.mp4", seconds=3, size="160x120")


@pytest.fixture
def ws(tmp_path, tiny, data_dir):
    """The session's tiny checkpoint (built once by the `tiny` fixture), a fresh store per test."""
    from omnivideo.app.app import App
    from omnivideo.app.config import AppConfig
    from omnivideo.ui.access import FileAccess
    from omnivideo.ui.workspace import Workspace

    (tmp_path / "models").symlink_to(data_dir / "models", target_is_directory=True)
    workspace = Workspace(App(AppConfig(data_dir=tmp_path, model="tiny", fps=2.0)), FileAccess(tmp_path),
                          max_open_chats=1, max_new_tokens=8)
    yield workspace
    workspace.app.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "needs Debian's chromium (apt-get install chromium; `make test` does it)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
