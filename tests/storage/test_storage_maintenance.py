"""verify() and gc(): corrupt files, orphans both ways, temp leftovers, live writers left alone."""
import os
import shutil
import time

import pytest
from storage_testkit import assert_layers_equal, make_key, make_layers, sha

from omnivideo.errors import CacheEntryCorrupt
from omnivideo.storage import KVStore
from omnivideo.storage.locks import try_flock


@pytest.fixture
def store(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        yield s


def _flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x40]))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damage_is_found_by_verify_and_by_load(store, damage):
    good = store.put(make_key(video_sha256=sha("good")), make_layers(), {})
    bad = store.put(make_key(), make_layers(), {})
    good.close()
    bad.close()
    path = bad.file_paths()[1]
    if damage == "flip":
        _flip_byte(path, path.stat().st_size - 5)
    else:
        os.truncate(path, path.stat().st_size // 2)
    report = store.verify()
    assert report["ok"] == [good.id]
    assert [(c["id"], c["file"]) for c in report["corrupt"]] == [(bad.id, path.name)]
    assert ("checksum" if damage == "flip" else "size") in report["corrupt"][0]["reason"]
    with store.get(make_key()) as entry:
        entry.load_layer(0)  # the undamaged layer still loads
        with pytest.raises(CacheEntryCorrupt, match=bad.id):
            entry.load_layer(1)
        with pytest.raises(CacheEntryCorrupt):
            list(entry.iter_layers())
    # the caller's recovery: drop the entry it failed on, recompute, store again
    assert store.drop(bad.id)
    layers = make_layers(seed=5)
    store.put(make_key(), layers, {}).close()
    with store.get(make_key()) as entry:
        assert_layers_equal(entry, layers)
    assert store.verify()["corrupt"] == []


def test_verify_repair_drops_corrupt_entries(store):
    entry = store.put(make_key(), make_layers(), {})
    entry.close()
    _flip_byte(entry.file_paths()[0], 100)
    report = store.verify(repair=True)
    assert report["corrupt"] and store.ls() == [] and not store.entry_dir(entry.id).exists()


def test_gc_removes_orphans_both_ways(store):
    kept = store.put(make_key(), make_layers(), {})
    lost = store.put(make_key(video_sha256=sha("lost")), make_layers(), {})
    kept.close()
    lost.close()
    shutil.copytree(store.entry_dir(kept.id), store.root / "entries" / "orphan-0001")  # files without a row
    shutil.rmtree(store.entry_dir(lost.id))                                           # a row without files
    report = store.verify()
    assert report["orphan_dirs"] == ["orphan-0001"]
    assert {(c["id"], c["reason"]) for c in report["corrupt"]} == {(lost.id, "missing")}
    report = store.gc()
    assert report["orphans_removed"] == ["orphan-0001"] and report["rows_dropped"] == [lost.id]
    assert report["bytes_freed"] == kept.nbytes + os.path.getsize(store.entry_dir(kept.id) / "manifest.json")
    assert [r["id"] for r in store.ls()] == [kept.id]
    assert store.verify() == {"ok": [kept.id], "corrupt": [], "orphan_dirs": [], "temp_dirs": [],
                              "bytes_checked": kept.nbytes}


def test_gc_spares_a_live_writer(store):
    tmp = store.root / "tmp" / "in-progress"
    tmp.mkdir()
    (tmp / "layer_0000.safetensors").write_bytes(b"partial")
    fd = try_flock(tmp / ".writing", blocking=True)  # what EntryWriter holds while it writes
    try:
        assert store.gc()["temp_removed"] == []
        assert tmp.exists()
    finally:
        os.close(fd)
    assert store.gc()["temp_removed"] == ["in-progress"] and not tmp.exists()


def test_gc_waits_before_removing_a_bare_temp_dir(store):
    """A writer creates tmp/<id>/ and then its .writing lock: a fresh dir without it may be that instant."""
    tmp = store.root / "tmp" / "just-created"
    tmp.mkdir()
    assert store.gc()["temp_removed"] == [] and tmp.exists()
    an_hour_ago = time.time() - 3600
    os.utime(tmp, (an_hour_ago, an_hour_ago))
    assert store.gc()["temp_removed"] == ["just-created"] and not tmp.exists()


def test_gc_enforces_the_budget_and_removes_idle_locks(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        keys = [make_key(video_sha256=sha(str(i))) for i in range(3)]
        for key in keys:
            with s.lock(key):
                s.put(key, make_layers(), {}).close()
        assert len(list((s.root / "locks").iterdir())) == 3
        one = s.ls()[0]["nbytes"]
    with KVStore(tmp_path / "cache", budget_bytes=one) as s:
        with s.lock(keys[0]):
            report = s.gc()
        assert len(report["evicted"]) == 2 and report["total_bytes"] == one
        assert report["locks_removed"] == 2  # the held lock stays
        assert [p.name for p in (s.root / "locks").iterdir()] == [f"{keys[0].digest()}.lock"]
