"""Export and import of one entry as a single uncompressed tar: manifest.json, then the layer files.

KV tensors barely compress, so the tar is stored plain and streams at disk speed both ways. The
manifest carries the full cache key, so an import keys the entry exactly as the exporter did; it
is refused when the model or the format differs from what the importer expects, and every file is
checksummed on the way in (a damaged archive raises CacheEntryCorrupt, nothing is added).

    store.export_entry(entry_id, "talk.omnikv")
    other_store.import_entry("talk.omnikv", expect_model_id="Qwen/Qwen2.5-VL-7B-Instruct")
"""
import io
import json
import os
import secrets
import tarfile
from pathlib import Path

from omnivideo.errors import CacheEntryCorrupt, CacheError

from .checksum import hasher_for
from .entry import StoredEntry
from .entry_writer import MANIFEST_NAME, EntryWriter
from .keys import CacheKey


ARCHIVE_KIND = "omnivideo-kv-entry"
ARCHIVE_VERSION = 1


def manifest(row: dict, files: list[dict], key: CacheKey, meta: dict, video_path) -> dict:
    """Everything needed to re-create an entry elsewhere (also written inside each entry directory)."""
    return {
        "kind": ARCHIVE_KIND, "archive_version": ARCHIVE_VERSION, "key": key.to_dict(), "key_digest": key.digest(),
        "meta": meta, "num_layers": row["num_layers"], "num_tokens": row["num_tokens"], "nbytes": row["nbytes"],
        "files": [{k: f[k] for k in ("name", "nbytes", "checksum")} for f in files],
        "video_path": None if video_path is None else str(video_path), "created_at": row["created_at"],
    }


class _HashingReader:
    """File-like wrapper that checksums what tarfile reads from it."""

    def __init__(self, f, checksum: str):
        self.f, self.hasher = f, hasher_for(checksum)

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.hasher.update(data)
        return data


def export_entry(store, entry_id: str, dest: Path) -> Path:
    """Write `dest` atomically (temp name + rename); raises CacheEntryCorrupt if a stored file is bad."""
    row = store.index.entry(entry_id=entry_id)
    if row is None:
        raise CacheError(f"no cache entry {entry_id!r}")
    directory = store.entry_dir(entry_id)
    files = store.index.files(entry_id)
    # rebuilt from the index (the source of truth), so a lost manifest.json does not block an export
    video = store.index.rows("select path from videos where sha256 = ?", (row["video_sha256"],))
    key = CacheKey.from_dict(json.loads(row["key_json"]))
    data = manifest(row, files, key, json.loads(row["meta_json"]), video[0]["path"] if video else None)
    manifest_bytes = json.dumps(data, indent=1, sort_keys=True).encode()
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.partial")
    try:
        with open(tmp, "wb") as out:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = tarfile.TarInfo(MANIFEST_NAME)
                info.size = len(manifest_bytes)
                tar.addfile(info, io.BytesIO(manifest_bytes))
                for f in files:
                    _add_verified(tar, directory / f["name"], f)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _add_verified(tar: tarfile.TarFile, path: Path, f: dict) -> None:
    with open(path, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        if size != f["nbytes"]:
            raise CacheEntryCorrupt(f"{path}: size {size} bytes, expected {f['nbytes']}; not exported")
        reader = _HashingReader(src, f["checksum"])
        info = tarfile.TarInfo(f["name"])
        info.size = size
        tar.addfile(info, reader)
        if reader.hasher.tag() != f["checksum"]:
            raise CacheEntryCorrupt(f"{path}: checksum {reader.hasher.tag()} does not match {f['checksum']}; not exported")


def _read_manifest(tar: tarfile.TarFile, src: Path) -> dict:
    member = tar.next()
    if member is None or member.name != MANIFEST_NAME or not member.isfile():
        raise CacheError(f"{src} is not an exported cache entry (no {MANIFEST_NAME} first)")
    try:
        data = json.loads(tar.extractfile(member).read())
    except ValueError as e:
        raise CacheError(f"{src}: unreadable manifest ({e})") from e
    if data.get("kind") != ARCHIVE_KIND or data.get("archive_version") != ARCHIVE_VERSION:
        raise CacheError(f"{src}: not a version {ARCHIVE_VERSION} {ARCHIVE_KIND} archive")
    return data


def import_entry(store, src: Path, *, expect_model_id: str | None, expect_format: int, refuse=None) -> StoredEntry:
    """refuse: key -> a reason the entry is unusable here (the app's check of code, library versions and
    device), or None to accept it."""
    try:
        tar = tarfile.open(src, mode="r:")
    except (OSError, tarfile.TarError) as e:
        raise CacheError(f"cannot read cache archive {src}: {e}") from e
    with tar:
        data = _read_manifest(tar, src)
        key = CacheKey.from_dict(data["key"])
        if key.digest() != data["key_digest"]:
            raise CacheEntryCorrupt(f"{src}: the manifest's key does not match its digest")
        if key.format_version != expect_format:
            raise CacheError(f"{src} holds a format {key.format_version} entry; this store reads format {expect_format}")
        if expect_model_id is not None and key.model_id != expect_model_id:
            raise CacheError(f"{src} was made with model {key.model_id!r}, not {expect_model_id!r}: refused")
        reason = refuse(key) if refuse is not None else None
        if reason:
            raise CacheError(f"{src} would never be used here, refused: {reason}")

        def fill(writer: EntryWriter) -> None:
            for i, f in enumerate(data["files"]):
                try:
                    member = tar.next()
                    if member is None or member.name != f["name"] or not member.isfile() or member.size != f["nbytes"]:
                        raise CacheEntryCorrupt(f"{src}: member {i} should be {f['name']} of {f['nbytes']} bytes")
                    writer.add_layer_stream(tar.extractfile(member), f["nbytes"], f["checksum"])
                except (tarfile.TarError, EOFError) as e:
                    raise CacheEntryCorrupt(f"{src}: truncated or damaged archive ({e})") from e
            if len(writer.files) != data["num_layers"]:
                raise CacheEntryCorrupt(f"{src}: {len(writer.files)} layer files, the manifest says {data['num_layers']}")

        entry = store.write_entry(key, fill, json.dumps(data["meta"], sort_keys=True), lambda: data["num_tokens"],
                             data["video_path"], data["meta"])
    if data["video_path"]:
        # keep a path this machine already knows; otherwise show the exporter's path in `cache ls`
        store.index.remember_video(key.video_sha256, data["video_path"], None, overwrite=False)
    return entry
