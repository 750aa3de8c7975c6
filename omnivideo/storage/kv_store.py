"""KVStore: the persistent video KV cache, composing the index, the layer files and the locks.

Layout under `root` (= <data dir>/cache):
  index.db                        SQLite index (WAL): entries, files + checksums, videos, sessions
  entries/<id>/layer_0000.safetensors ... manifest.json     one complete entry per directory
  tmp/<id>/                       entries being written (gc removes those of dead writers)
  locks/<key digest>.lock         per-key ingest locks

    store = KVStore(data_dir / "cache", budget_bytes=50 << 30)
    key = CacheKey(video_sha256=store.fingerprint(video), ...)
    with store.lock(key):                      # two processes ingesting one video produce one entry
        entry = store.get(key)
        if entry is None:
            entry = store.put(key, engine.prefill_layers(...), meta={"rope_deltas": [...], ...})
    try:
        layers = list(entry.iter_layers("cuda"))
    except CacheEntryCorrupt:
        store.drop(entry.id)                   # then recompute
"""
import json
import logging
import secrets
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from omnivideo.errors import CacheError, ConfigError

from . import archive, maintenance
from .entry import StoredEntry
from .entry_writer import ENTRIES_DIR, TMP_DIR, EntryWriter
from .fingerprint import fingerprint
from .index import Index
from .keys import FORMAT_VERSION, CacheKey
from .locks import FileLock
from .sessions import SessionStore

log = logging.getLogger(__name__)
LOCKS_DIR = "locks"


def _meta_json(meta: dict) -> str:
    try:
        return json.dumps(meta, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise CacheError(f"entry meta must be JSON-serializable (convert tensors to lists): {e}") from e


class KVStore:
    def __init__(self, root: str | Path, *, budget_bytes: int | None = None):
        if budget_bytes is not None and budget_bytes <= 0:
            raise ConfigError(f"cache budget must be a positive number of bytes, got {budget_bytes}")
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        for sub in (ENTRIES_DIR, TMP_DIR, LOCKS_DIR):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.index = Index(self.root / "index.db")
        self.sessions = SessionStore(self.index)

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> "KVStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lookups ----------------------------------------------------------------------------------
    def fingerprint(self, path: str | Path) -> str:
        """sha256 of the file's bytes, remembered by (abs path, size, mtime, ctime, inode)."""
        return fingerprint(self.index, path)

    def get(self, key: CacheKey) -> StoredEntry | None:
        """The entry for `key` (its files opened, last use updated), or None on a miss."""
        row = self.index.entry(digest=key.digest())
        if row is None:
            return None
        try:
            entry = StoredEntry(row, self.index.files(row["id"]), self.entry_dir(row["id"]))
        except FileNotFoundError as e:
            log.warning("cache entry %s lost a file (%s): dropping it, it will be recomputed", row["id"], e.filename)
            self.drop(row["id"])
            return None
        self.index.touch(row["id"])
        return entry

    def entry_dir(self, entry_id: str) -> Path:
        return self.root / ENTRIES_DIR / entry_id

    def lock(self, key: CacheKey, timeout: float | None = None) -> FileLock:
        """Inter-process lock for one key: hold it across get() + put() so only one process computes."""
        return FileLock(self.root / LOCKS_DIR / f"{key.digest()}.lock", timeout=timeout)

    def resolve(self, id_prefix: str) -> str:
        """The full entry id that starts with `id_prefix` (as typed after `cache ls`)."""
        found = self.index.ids_with_prefix(id_prefix) if id_prefix else []
        if len(found) != 1:
            raise CacheError(f"{'no' if not found else 'more than one'} cache entry matches {id_prefix!r}")
        return found[0]

    def ls(self) -> list[dict]:
        """One dict per entry, most recently used first: id, video_path, video_sha256, model_id,
        model_revision, quantization, dtype, attention_preset, sampling, meta (the entry's meta dict),
        num_layers, num_tokens, nbytes, created_at, last_used_at."""
        out = []
        for row in self.index.entries():
            item = {k: v for k, v in row.items() if k not in ("key_json", "meta_json", "key_digest", "format_version")}
            item["key"] = json.loads(row["key_json"])
            item["sampling"] = dict(item["key"]["sampling"])
            item["meta"] = json.loads(row["meta_json"])
            out.append(item)
        return out

    def total_bytes(self) -> int:
        return sum(r["nbytes"] for r in self.index.entries())

    # -- writes -----------------------------------------------------------------------------------
    def put(self, key: CacheKey, layers: Iterable[tuple[torch.Tensor, torch.Tensor]], meta: dict,
            *, video_path: str | Path | None = None) -> StoredEntry:
        """Store the prefix KV of `key`, consuming `layers` one (k, v) pair at a time.

        k, v: [Hkv, N, d] (any device, same dtype and N for every layer). Atomic: the entry becomes
        visible only when complete; an entry of the same key is replaced. Raises DiskFullError
        (nothing left behind), or CacheError if the entry alone exceeds the budget.
        """
        meta_json = _meta_json(meta)
        video_path = None if video_path is None else str(Path(video_path).resolve())
        layout: dict = {}

        def fill(writer: EntryWriter) -> None:
            for k, v in layers:
                assert k.ndim == 3 and v.ndim == 3 and k.shape[:2] == v.shape[:2], f"k {tuple(k.shape)} v {tuple(v.shape)}"
                assert k.dtype == v.dtype == layout.setdefault("dtype", k.dtype), "one dtype for every layer"
                assert k.shape[1] == layout.setdefault("num_tokens", k.shape[1]), "one token count for every layer"
                writer.add_layer(k, v)
            if not writer.files:
                raise CacheError("cannot store an entry with no layers")

        entry = self.write_entry(key, fill, meta_json, lambda: layout["num_tokens"], video_path, meta)
        if video_path is not None:
            self.index.remember_video(key.video_sha256, video_path, None, overwrite=True)
        return self._admit(entry)

    def _admit(self, entry: StoredEntry) -> StoredEntry:
        """Enforce the budget around a new entry (evicting older ones, or refusing this one)."""
        try:
            maintenance.enforce_budget(self, keep=entry.id)
        except CacheError:
            entry.close()
            raise
        return entry

    def write_entry(self, key: CacheKey, fill: Callable[[EntryWriter], None], meta_json: str,
               num_tokens: Callable[[], int], video_path, meta: dict) -> StoredEntry:
        """Write an entry through `fill(writer)`, then commit it: rename into place, then one index transaction.

        The budget is not enforced here (`put` and `import_entry` do it around the new entry)."""
        digest = key.digest()
        entry_id = f"{digest[:16]}-{secrets.token_hex(4)}"
        with EntryWriter(self.root, entry_id) as writer:
            fill(writer)
            now = time.time()
            row = {
                "id": entry_id, "key_digest": digest, "key_json": json.dumps(key.to_dict(), sort_keys=True),
                "video_sha256": key.video_sha256, "model_id": key.model_id, "model_revision": key.model_revision,
                "quantization": key.quantization, "dtype": key.dtype, "attention_preset": key.attention_preset,
                "format_version": key.format_version, "num_layers": len(writer.files), "num_tokens": num_tokens(),
                "nbytes": sum(f["nbytes"] for f in writer.files), "meta_json": meta_json,
                "created_at": now, "last_used_at": now,
            }
            writer.commit(archive.manifest(row, writer.files, key, meta, video_path))
            files = [{"entry_id": entry_id, **f} for f in writer.files]
            replaced = self.index.add_entry(row, files)
        if replaced is not None:
            shutil.rmtree(self.entry_dir(replaced), ignore_errors=True)
        return StoredEntry(row, files, self.entry_dir(entry_id))

    def drop(self, key_or_id: CacheKey | str) -> bool:
        """Remove an entry (by key, or by id: prefer the id of the entry that failed); True if one was removed."""
        if isinstance(key_or_id, CacheKey):
            row = self.index.entry(digest=key_or_id.digest())
            if row is None:
                return False
            key_or_id = row["id"]
        removed = self.index.delete_entry(key_or_id)
        # row first, files second: a crash in between leaves an orphan directory that gc removes
        shutil.rmtree(self.entry_dir(key_or_id), ignore_errors=True)
        return removed

    # -- maintenance and transfer ---------------------------------------------------------------
    def gc(self) -> dict:
        """Enforce the budget (LRU), remove temp leftovers, orphan dirs, rows without files, idle locks."""
        return maintenance.gc(self)

    def verify(self, *, repair: bool = False) -> dict:
        """Check every file's size and checksum and look for orphans; `repair` drops bad entries and runs gc."""
        return maintenance.verify(self, repair=repair)

    def export_entry(self, entry_id: str, dest_file: str | Path) -> Path:
        """Write one entry as a single tar file (manifest + layer files), verifying checksums on the way."""
        return archive.export_entry(self, entry_id, Path(dest_file))

    def import_entry(self, src_file: str | Path, *, expect_model_id: str | None = None,
                     expect_format: int | None = None, refuse=None) -> StoredEntry:
        """Add an exported entry; refuses another model (when given), a format other than `expect_format`
        (default: the format this code writes), or a key for which `refuse(key)` gives a reason."""
        entry = archive.import_entry(self, Path(src_file), expect_model_id=expect_model_id,
                                     expect_format=FORMAT_VERSION if expect_format is None else expect_format,
                                     refuse=refuse)
        return self._admit(entry)

    # -- sessions (see storage.sessions) ---------------------------------------------------------
    def create_session(self, video_sha256: str, model_id: str, title: str = "", **kwargs) -> str:
        return self.sessions.create(video_sha256=video_sha256, model_id=model_id, title=title, **kwargs)

    def add_message(self, session_id: str, role: str, content: str, meta: dict | None = None) -> int:
        return self.sessions.add_message(session_id, role, content, meta)

    def get_session(self, session_id: str) -> dict:
        return self.sessions.get(session_id)

    def list_sessions(self, video_sha256: str | None = None) -> list[dict]:
        return self.sessions.list(video_sha256)

    def delete_session(self, session_id: str) -> None:
        self.sessions.delete(session_id)
