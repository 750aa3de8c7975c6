"""The persistent video KV cache end to end: cold vs warm, misses on changed inputs, corruption,
concurrency, export/import and sessions that survive a restart. Tiny model, real files, real SQLite."""
import ctypes
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import make_clip
from omnivideo.engine.sampling import SamplingParams
from omnivideo.app.app import App
from omnivideo.app.config import AppConfig

ROOT = Path(__file__).resolve().parents[1]
IN_OPEN = 0x20


class OpenWatch:
    """Counts open(2) calls on one file by any process, through Linux inotify (no mocks)."""

    def __init__(self, path: Path):
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN) >= 0

    def opens(self) -> int:
        count = 0
        while True:
            try:
                buf = os.read(self.fd, 4096)
            except BlockingIOError:
                return count
            offset = 0
            while offset < len(buf):
                _, mask, _, length = struct.unpack_from("iIII", buf, offset)
                count += bool(mask & IN_OPEN)
                offset += 16 + length

    def close(self):
        os.close(self.fd)


def _cli(args, home: Path, timeout=300):
    env = dict(os.environ, OMNIVIDEO_HOME=str(home), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / "launcher.py"), *args], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=ROOT)


def _ask(home, video, question="What happens?", *extra):
    out = _cli(["ask", str(video), question, "--model", "tiny", "--json", "--max-new-tokens", "8", *extra], home)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture()
def home(tmp_path, data_dir, tiny):
    """A fresh data dir that shares the session's tiny checkpoint (no rebuild per test)."""
    (tmp_path / "home").mkdir()
    os.symlink(data_dir / "models", tmp_path / "home" / "models")
    return tmp_path / "home"


def test_warm_answer_equals_cold_and_never_opens_the_video(home, tmp_path):
    video = make_clip(tmp_path / "v.mp4", seconds=3, seed=5)
    cold = _ask(home, video)
    watch = OpenWatch(video)
    try:
        warm = _ask(home, video)
        opened = watch.opens()
    finally:
        watch.close()
    assert cold["cache_hit"] is False and warm["cache_hit"] is True
    assert warm["answer"] == cold["answer"] and warm["tokens"] == {**cold["tokens"], "reused": warm["tokens"]["reused"]}
    assert warm["timings"]["vision_s"] == 0 and "cache_load_s" in warm["timings"]
    assert opened == 0, f"the warm run opened the video {opened} times"
    # positive control: a run with other settings decodes the video, and inotify sees it
    watch = OpenWatch(video)
    try:
        assert _ask(home, video, "What happens?", "--fps", "1")["cache_hit"] is False
        assert watch.opens() > 0
    finally:
        watch.close()


def test_changed_inputs_miss(home, tmp_path, data_dir):
    video = make_clip(tmp_path / "same_name.mp4", seconds=2, seed=1)
    assert _ask(home, video)["cache_hit"] is False
    assert _ask(home, video)["cache_hit"] is True
    assert _ask(home, video, "What happens?", "--fps", "1")["cache_hit"] is False           # sampling
    other_model = shutil.copytree(data_dir / "models" / "tiny-qwen2.5-vl-v1", tmp_path / "tiny-copy")
    out = _cli(["ask", str(video), "q", "--model", str(other_model), "--json", "--max-new-tokens", "2"], home)
    assert out.returncode == 0 and json.loads(out.stdout)["cache_hit"] is False               # model
    make_clip(video, seconds=2, seed=2)                                                        # content, same name
    assert _ask(home, video)["cache_hit"] is False


def test_prompt_prefix_is_part_of_the_key(home, tmp_path):
    from omnivideo.engine.prompt import ChatFormat
    from omnivideo.app.library import cache_key

    video = make_clip(tmp_path / "p.mp4", seconds=2, seed=3)
    app = App(AppConfig(data_dir=home, model="tiny"))
    cfg = app.engine.config
    a = cache_key(app.store, video, app.loaded, app.chat_format(), app.sampling_config(), "dense", cfg)
    b = cache_key(app.store, video, app.loaded, ChatFormat(app.loaded.tokenizer, system="Other instructions."),
                  app.sampling_config(), "dense", cfg)
    c = cache_key(app.store, video, app.loaded, app.chat_format(), app.sampling_config(), "balanced", cfg)
    assert len({a.digest(), b.digest(), c.digest()}) == 3
    app.close()


def test_corrupt_entry_is_detected_and_recomputed(home, tmp_path):
    video = make_clip(tmp_path / "c.mp4", seconds=2, seed=4)
    cold = _ask(home, video)
    assert _cli(["cache", "verify"], home).returncode == 0
    layer = sorted((home / "cache").rglob("*.safetensors"))[0]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    bad = _cli(["cache", "verify", "--json"], home)
    assert bad.returncode == 1 and json.loads(bad.stdout)["corrupt"]
    again = _ask(home, video)
    assert again["cache_hit"] is False and again["answer"] == cold["answer"]
    assert _ask(home, video)["cache_hit"] is True


def test_concurrent_ingests_make_one_entry(home, tmp_path):
    video = make_clip(tmp_path / "twice.mp4", seconds=3, seed=6)
    results = []

    def run():
        results.append(_cli(["ingest", str(video), "--model", "tiny", "--json"], home))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    hits = sorted(json.loads(r.stdout)[0]["cache_hit"] for r in results)
    assert hits == [False, True]
    entries = json.loads(_cli(["cache", "ls", "--json"], home).stdout)
    assert len(entries) == 1


def test_export_import_into_an_empty_data_dir_hits(home, tmp_path, data_dir):
    video = make_clip(tmp_path / "e.mp4", seconds=2, seed=7)
    cold = _ask(home, video)
    entry = json.loads(_cli(["cache", "ls", "--json"], home).stdout)[0]["id"]
    archive = tmp_path / "entry.tar"
    assert _cli(["cache", "export", entry, str(archive)], home).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    os.symlink(data_dir / "models", other / "models")
    refused = _cli(["cache", "import", str(archive), "--model", "Qwen/Qwen2.5-VL-7B-Instruct"], other)
    assert refused.returncode == 2 and refused.stderr.startswith("error:")
    assert _cli(["cache", "import", str(archive), "--model", "tiny"], other).returncode == 0
    warm = _ask(other, video)
    assert warm["cache_hit"] is True and warm["answer"] == cold["answer"]


def test_session_continues_after_a_restart(home, tmp_path):
    video = make_clip(tmp_path / "s.mp4", seconds=2, seed=8)
    params = SamplingParams(max_new_tokens=5)
    app = App(AppConfig(data_dir=home, model="tiny"))
    chat = app.open_video(video)
    first = "".join(chat.ask("What happens?", params))
    session_id = chat.session_id
    app.close()

    restarted = App(AppConfig(data_dir=home, model="tiny"))
    assert [s["id"] for s in restarted.sessions()] == [session_id]
    resumed = restarted.resume(session_id)
    assert resumed.video.cache_hit is True and resumed.turns == [("What happens?", first)]
    second = "".join(resumed.ask("And then?", params))
    assert [m["content"] for m in restarted.store.get_session(session_id)["messages"]] == [
        "What happens?", first, "And then?", second]
    restarted.close()

    # the same two turns in one process give the same second answer
    once = App(AppConfig(data_dir=home, model="tiny"), use_store=False)
    chat = once.open_video(video)
    assert "".join(chat.ask("What happens?", params)) == first
    assert "".join(chat.ask("And then?", params)) == second
