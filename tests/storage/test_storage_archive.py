"""Export of one entry to a single file and import into another store."""
import tarfile

import pytest
from storage_testkit import assert_layers_equal, make_key, make_layers

from omnivideo.errors import CacheEntryCorrupt, CacheError
from omnivideo.storage import FORMAT_VERSION, KVStore


@pytest.fixture
def exported(tmp_path):
    """(path of an exported entry, its layers, its meta) from a store under tmp_path/src."""
    layers, meta = make_layers(num_layers=3), {"rope_deltas": [[-7]], "num_tokens": 37}
    with KVStore(tmp_path / "src") as s:
        video = tmp_path / "clip.mp4"
        video.write_bytes(b"clip bytes")
        key = make_key(video_sha256=s.fingerprint(video))
        with s.put(key, layers, meta, video_path=video) as entry:
            path = s.export_entry(entry.id, tmp_path / "clip.omnikv")
    return path, key, layers, meta


def test_export_then_import_into_empty_root_hits(tmp_path, exported):
    path, key, layers, meta = exported
    assert tarfile.is_tarfile(path) and not list(tmp_path.glob(".*.partial"))
    with KVStore(tmp_path / "dst") as s:
        imported = s.import_entry(path, expect_model_id="tiny")
        imported.close()
        with s.get(key) as entry:
            assert entry.meta == meta and entry.id == imported.id
            assert_layers_equal(entry, layers)
        (row,) = s.ls()
        assert row["video_path"] == str((tmp_path / "clip.mp4").resolve())
        assert s.verify()["corrupt"] == []


def test_import_refuses_another_model(tmp_path, exported):
    with KVStore(tmp_path / "dst") as s:
        with pytest.raises(CacheError, match="refused"):
            s.import_entry(exported[0], expect_model_id="Qwen/Qwen2.5-VL-7B-Instruct")
        assert s.ls() == [] and list((s.root / "entries").iterdir()) == []


def test_import_refuses_another_format(tmp_path):
    with KVStore(tmp_path / "src") as s, s.put(make_key(format_version=FORMAT_VERSION + 1), make_layers(), {}) as e:
        path = s.export_entry(e.id, tmp_path / "future.omnikv")
    with KVStore(tmp_path / "dst") as s:
        with pytest.raises(CacheError, match="format"):
            s.import_entry(path)
        assert s.ls() == []
        s.import_entry(path, expect_format=FORMAT_VERSION + 1).close()  # a reader of that format takes it
        assert len(s.ls()) == 1


def test_damaged_archive_is_refused_and_leaves_nothing(tmp_path, exported):
    with tarfile.open(exported[0]) as tar:
        last = tar.getmembers()[-1]
    data = bytearray(exported[0].read_bytes())
    data[last.offset_data + last.size - 3] ^= 0xFF  # inside the last layer file's tensor bytes
    damaged = tmp_path / "damaged.omnikv"
    damaged.write_bytes(data)
    with KVStore(tmp_path / "dst") as s:
        with pytest.raises(CacheEntryCorrupt, match="checksum"):
            s.import_entry(damaged)
        assert s.ls() == [] and list((s.root / "tmp").iterdir()) == [] and list((s.root / "entries").iterdir()) == []
        truncated = tmp_path / "truncated.omnikv"
        truncated.write_bytes(exported[0].read_bytes()[:len(data) // 2])
        with pytest.raises(CacheEntryCorrupt):
            s.import_entry(truncated)
        with pytest.raises(CacheError, match="not an exported cache entry|cannot read"):
            s.import_entry(tmp_path / "clip.mp4")
        assert s.ls() == [] and list((s.root / "tmp").iterdir()) == [] and list((s.root / "entries").iterdir()) == []


def test_export_needs_only_the_index_and_the_layer_files(tmp_path):
    layers = make_layers()
    with KVStore(tmp_path / "src") as s, s.put(make_key(), layers, {"a": 1}) as entry:
        (entry.directory / "manifest.json").unlink()
        path = s.export_entry(entry.id, tmp_path / "out.omnikv")
    with KVStore(tmp_path / "dst") as s:
        s.import_entry(path).close()
        with s.get(make_key()) as entry:
            assert entry.meta == {"a": 1}
            assert_layers_equal(entry, layers)


def test_export_refuses_a_corrupt_entry(tmp_path):
    with KVStore(tmp_path / "src") as s, s.put(make_key(), make_layers(), {}) as entry:
        with open(entry.file_paths()[0], "r+b") as f:
            f.seek(200)
            f.write(b"\x00\x01\x02")
        with pytest.raises(CacheEntryCorrupt):
            s.export_entry(entry.id, tmp_path / "out.omnikv")
        assert not (tmp_path / "out.omnikv").exists() and not list(tmp_path.glob(".*.partial"))
        with pytest.raises(CacheError, match="no cache entry"):
            s.export_entry("nope", tmp_path / "out.omnikv")
