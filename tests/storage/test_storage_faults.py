"""Real failures in real processes: SIGKILL mid-write, two ingesting processes, a full disk."""
import os
import signal
import subprocess
import time

import pytest
from storage_testkit import assert_layers_equal, child_result, make_key, make_layers, run_child, sha

from omnivideo.errors import DiskFullError
from omnivideo.storage import KVStore

KILL_CHILD = """
import sys, torch
from omnivideo.storage import KVStore
from storage_testkit import make_key
store = KVStore(sys.argv[1])
def layers():
    yield torch.randn(8, 8192, 128), torch.randn(8, 8192, 128)   # 64 MiB: the parent kills us while it is written
    sys.stdin.readline()                                         # ... or, at the latest, here
    yield torch.randn(8, 8192, 128), torch.randn(8, 8192, 128)
store.put(make_key(), layers(), {})
"""


def test_sigkill_during_write_leaves_no_entry(tmp_path):
    root = tmp_path / "cache"
    KVStore(root).close()
    proc = run_child(KILL_CHILD, str(root), stdin=subprocess.PIPE)
    deadline, layer0 = time.monotonic() + 60, None
    while layer0 is None:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the child never started writing"
        layer0 = next((root / "tmp").glob("*/layer_0000.safetensors"), None)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with KVStore(root) as s:
        assert s.get(make_key()) is None and s.ls() == []
        assert list((root / "entries").iterdir()) == []
        (leftover,) = s.verify()["temp_dirs"]
        assert s.gc()["temp_removed"] == [leftover]  # the dead writer's lock is free: gc may clean up
        assert list((root / "tmp").iterdir()) == []
        layers = make_layers()
        s.put(make_key(), layers, {}).close()
        with s.get(make_key()) as entry:
            assert_layers_equal(entry, layers)


INGEST_CHILD = """
import json, sys, time
from pathlib import Path
from omnivideo.storage import KVStore
from storage_testkit import make_key, make_layers
root, name, go = sys.argv[1:4]
store = KVStore(root)
key = make_key()

def slow_layers():
    for kv in make_layers(num_layers=6, tokens=2048):
        time.sleep(0.05)  # a long ingest: the other process must queue on the lock, not compute too
        yield kv

(Path(go).parent / f"ready_{name}").touch()
while not Path(go).exists():
    time.sleep(0.005)
with store.lock(key):
    entry = store.get(key)
    computed = entry is None
    if computed:
        entry = store.put(key, slow_layers(), {"by": name})
with entry:
    total = sum(float(k.double().sum() + v.double().sum()) for k, v in entry.iter_layers())
print(json.dumps({"computed": computed, "id": entry.id, "by": entry.meta["by"], "total": total}))
"""


def test_two_processes_ingesting_one_video_make_one_entry(tmp_path):
    root, go = tmp_path / "cache", tmp_path / "go"
    KVStore(root).close()
    procs = [run_child(INGEST_CHILD, str(root), name, str(go)) for name in ("a", "b")]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready_{n}").exists() for n in ("a", "b")):
        assert all(p.poll() is None for p in procs) and time.monotonic() < deadline
        time.sleep(0.01)
    go.touch()
    results = [child_result(p) for p in procs]
    assert sorted(r["computed"] for r in results) == [False, True]
    assert len({r["id"] for r in results}) == 1 and len({r["by"] for r in results}) == 1
    assert results[0]["total"] == results[1]["total"]  # both answer from the same bytes
    with KVStore(root) as s:
        assert [r["id"] for r in s.ls()] == [results[0]["id"]]
        assert [d.name for d in (root / "entries").iterdir()] == [results[0]["id"]]


FSIZE_CHILD = """
import json, resource, sys, torch
from omnivideo.storage import KVStore
from storage_testkit import make_key, make_layers, sha
from omnivideo.errors import DiskFullError
store = KVStore(sys.argv[1])
# the kernel refuses to grow any file past 1 MiB (EFBIG; Python ignores SIGXFSZ)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
layers = make_layers(num_layers=2) + [(torch.zeros(2, 37, 8192), torch.zeros(2, 37, 8192))]   # 4.6 MiB last
try:
    store.put(make_key(video_sha256=sha("big")), layers, {})
    print(json.dumps({"error": None}))
except DiskFullError as e:
    print(json.dumps({"error": str(e)}))
"""


def _snapshot(store: KVStore) -> tuple:
    return (store.ls(), sorted(p.name for p in (store.root / "entries").iterdir()),
            sorted(p.name for p in (store.root / "tmp").iterdir()))


def test_file_size_limit_raises_disk_full_and_leaves_index_unchanged(tmp_path):
    root = tmp_path / "cache"
    with KVStore(root) as s:
        s.put(make_key(), make_layers(), {}).close()
        before = _snapshot(s)
    result = child_result(run_child(FSIZE_CHILD, str(root)))
    assert result["error"] is not None and "not enough disk space" in result["error"]
    assert "index is unchanged" in result["error"] and "2 layer files" in result["error"]
    with KVStore(root) as s:
        assert _snapshot(s) == before
        assert s.get(make_key(video_sha256=sha("big"))) is None
        s.put(make_key(video_sha256=sha("big")), make_layers(), {}).close()  # without the limit it fits


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 3 MiB tmpfs: a real ENOSPC. Needs CAP_SYS_ADMIN (root in the CI container)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def test_full_tmpfs_raises_disk_full_and_leaves_index_unchanged(tiny_tmpfs):
    with KVStore(tiny_tmpfs / "cache") as s:
        s.put(make_key(), make_layers(), {}).close()
        before = _snapshot(s)
        with pytest.raises(DiskFullError, match="No space left"):
            s.put(make_key(video_sha256=sha("big")), make_layers(num_layers=8, tokens=8192), {})  # 8 MiB
        assert _snapshot(s) == before
        s.put(make_key(video_sha256=sha("small")), make_layers(), {}).close()  # the space came back
        assert len(s.ls()) == 2
    os.sync()
