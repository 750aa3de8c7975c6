"""KVStore on real SQLite files and real tensor files in tmp_path."""
import os
import time

import pytest
import torch
from storage_testkit import CHANGED, KEY_FIELDS, assert_layers_equal, make_key, make_layers, sha

from omnivideo.errors import CacheError, ConfigError, VideoError
from omnivideo.storage import KVStore


@pytest.fixture
def store(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        yield s


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_round_trip_across_instances(tmp_path, dtype):
    layers = make_layers(num_layers=4, dtype=dtype)
    meta = {"rope_deltas": [[-12]], "timestamps": [0.0, 0.5], "num_video_tokens": 30, "prefix_token_ids": [1, 2, 3]}
    with KVStore(tmp_path / "cache") as s:
        put = s.put(make_key(), iter(layers), meta)
        assert (put.num_layers, put.num_tokens) == (4, 37)
        put.close()
    with KVStore(tmp_path / "cache") as s, s.get(make_key()) as entry:
        assert entry.meta == meta
        assert entry.nbytes == sum(f.stat().st_size for f in entry.file_paths())
        assert_layers_equal(entry, layers)
        k2, v2 = entry.load_layer(2)
        assert torch.equal(k2, layers[2][0]) and torch.equal(v2, layers[2][1])


def test_put_streams_layer_by_layer(store):
    """Each layer is on disk before the next is produced: the producer never has to hold them all."""
    seen_on_disk = []

    def produce():
        for i, kv in enumerate(make_layers(num_layers=3)):
            tmp_dirs = list((store.root / "tmp").iterdir())
            seen_on_disk.append(sorted(p.name for p in tmp_dirs[0].glob("layer_*")) if tmp_dirs else [])
            yield kv

    store.put(make_key(), produce(), {}).close()
    assert seen_on_disk == [[], ["layer_0000.safetensors"], ["layer_0000.safetensors", "layer_0001.safetensors"]]
    assert list((store.root / "tmp").iterdir()) == []


@pytest.mark.parametrize("field", sorted(CHANGED))
def test_any_key_change_misses(store, field):
    store.put(make_key(), make_layers(num_layers=1), {}).close()
    assert store.get(make_key(**{field: CHANGED[field]})) is None
    with store.get(make_key()) as hit:
        assert hit is not None


def test_put_same_key_replaces(store):
    first = store.put(make_key(), make_layers(seed=1), {"n": 1})
    first.close()
    store.put(make_key(), make_layers(seed=2), {"n": 2}).close()
    assert [r["id"] for r in store.ls()] != [first.id] and len(store.ls()) == 1
    assert not store.entry_dir(first.id).exists()
    with store.get(make_key()) as entry:
        assert entry.meta == {"n": 2}
        assert_layers_equal(entry, make_layers(seed=2))


def test_ls_drop_and_resolve(store, tmp_path):
    video = tmp_path / "talk.mp4"
    video.write_bytes(b"not really a video")
    key = make_key(video_sha256=store.fingerprint(video))
    entry = store.put(key, make_layers(), {}, video_path=video)
    entry.close()
    (row,) = store.ls()
    assert row["video_path"] == str(video.resolve()) and row["model_id"] == "tiny"
    assert row["num_tokens"] == 37 and row["nbytes"] == entry.nbytes and row["sampling"] == KEY_FIELDS["sampling"]
    assert store.resolve(entry.id[:10]) == entry.id
    with pytest.raises(CacheError):
        store.resolve("zzz")
    assert store.drop(entry.id) and not store.drop(entry.id)
    assert store.ls() == [] and not store.entry_dir(entry.id).exists()
    store.put(key, make_layers(), {}).close()
    assert store.drop(key) and store.get(key) is None


def test_get_drops_an_entry_that_lost_a_file(store):
    entry = store.put(make_key(), make_layers(), {})
    entry.close()
    entry.file_paths()[1].unlink()
    assert store.get(make_key()) is None
    assert store.ls() == [] and not store.entry_dir(entry.id).exists()


def test_open_entry_survives_eviction_by_another_handle(tmp_path, store):
    layers = make_layers()
    store.put(make_key(), layers, {}).close()
    with store.get(make_key()) as entry, KVStore(tmp_path / "cache") as other:
        other.drop(make_key())
        assert_layers_equal(entry, layers)  # files were opened by get(): unlinking them does not break the load


def test_bad_meta_is_refused_before_writing(store):
    with pytest.raises(CacheError, match="JSON"):
        store.put(make_key(), make_layers(), {"rope": torch.zeros(2)})
    with pytest.raises(CacheError, match="no layers"):
        store.put(make_key(), [], {})
    assert store.ls() == [] and list((store.root / "tmp").iterdir()) == []


def test_lru_eviction_under_budget(tmp_path):
    with KVStore(tmp_path / "probe") as probe, probe.put(make_key(), make_layers(), {}) as entry:
        size = entry.nbytes
    with KVStore(tmp_path / "cache", budget_bytes=int(size * 2.5)) as s:
        keys = [make_key(video_sha256=sha(f"v{i}")) for i in range(4)]
        for key in keys[:3]:
            s.put(key, make_layers(), {}).close()
            time.sleep(0.01)  # distinct last-used times
        assert len(s.ls()) == 2  # the third put evicted the first
        s.get(keys[1]).close()  # keys[1] becomes most recently used; keys[2] is now the LRU
        s.put(keys[3], make_layers(), {}).close()
        assert {r["video_sha256"] for r in s.ls()} == {keys[1].video_sha256, keys[3].video_sha256}
        assert s.total_bytes() <= s.budget_bytes
        with pytest.raises(CacheError, match="budget"):
            s.put(make_key(video_sha256=sha("huge")), make_layers(num_layers=9), {})
        assert len(s.ls()) == 2 and len(list((s.root / "entries").iterdir())) == 2


def test_budget_must_be_positive(tmp_path):
    with pytest.raises(ConfigError):
        KVStore(tmp_path / "cache", budget_bytes=0)


def test_fingerprint_memoized_and_content_based(store, tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "sub" / "b.mp4"
    b.parent.mkdir()
    a.write_bytes(b"x" * 100_000)
    b.write_bytes(b"x" * 100_000)
    first = store.fingerprint(a)
    hashed_at = store.index.fingerprint_row(str(a))["hashed_at"]
    assert store.fingerprint(a) == first and store.index.fingerprint_row(str(a))["hashed_at"] == hashed_at
    assert store.fingerprint(b) == first  # same content elsewhere: same hash
    # same name, same size, new content, and the mtime forged back: ctime still gives it away
    st = os.stat(a)
    a.write_bytes(b"y" * 100_000)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = store.fingerprint(a)
    assert changed != first and changed == sha("y" * 100_000)
    # a new mtime on its own also rehashes (and gives the same hash for the same bytes)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert store.fingerprint(a) == changed and store.index.fingerprint_row(str(a))["mtime_ns"] == st.st_mtime_ns + 10**9
    with pytest.raises(VideoError):
        store.fingerprint(tmp_path / "missing.mp4")


@pytest.mark.gpu
def test_load_to_cuda_through_pinned_buffers(store):
    layers = make_layers(num_layers=4, dtype=torch.bfloat16)
    store.put(make_key(), [(k.cuda(), v.cuda()) for k, v in layers], {}).close()
    with store.get(make_key()) as entry:
        for (k, v), (k0, v0) in zip(entry.iter_layers("cuda"), layers, strict=True):
            assert k.is_cuda and torch.equal(k.cpu(), k0) and torch.equal(v.cpu(), v0)
        k1, _ = entry.load_layer(1, "cuda")
        assert k1.is_cuda and torch.equal(k1.cpu(), layers[1][0])
