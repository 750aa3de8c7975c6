"""Thin sqlite-utils queries over root/index.db: rows in, rows out, no tensor or file code.

The database runs in WAL mode so readers never block the one writer; writes take the write lock up
front (BEGIN IMMEDIATE) so two processes queue on SQLite's busy timeout instead of failing on a
lock upgrade. One connection is shared by the threads of a process behind a mutex.

    index = Index(root / "index.db")
    with index.write() as db:
        db["kv_entries"].insert(row)
"""
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from omnivideo.errors import CacheError, DiskFullError

from .locks import FileLock
from .migrations import MIGRATIONS

_BUSY_TIMEOUT_S = 60.0  # a concurrent writer holds the lock for milliseconds; this is a wide margin


def open_database(path: Path) -> Database:
    """Open (creating if needed) the index, switch to WAL and apply pending migrations.

    Migrations run under a file lock so two processes opening a fresh root do not both create tables.
    """
    conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
    db = Database(conn)
    with FileLock(path.with_name(path.name + ".migrate.lock")):
        db.enable_wal()
        MIGRATIONS.apply(db)
    return db


class Index:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = open_database(self.path)
        self._mutex = threading.RLock()

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def write(self) -> Iterator[Database]:
        """One write transaction; SQLITE_FULL becomes DiskFullError (the transaction is rolled back)."""
        with self._mutex:
            try:
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    self.db.conn.rollback()
                    raise
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if self.db.conn.in_transaction:
                    self.db.conn.rollback()
                if e.sqlite_errorcode == sqlite3.SQLITE_FULL:
                    raise DiskFullError(f"the disk holding {self.path} is full: the cache index was not changed") from e
                raise CacheError(f"cache index {self.path}: {e}") from e

    def rows(self, sql: str, params: tuple = ()) -> list[dict]:
        with self._mutex:
            return list(self.db.query(sql, params))

    # -- entries --------------------------------------------------------------------------------
    def entry(self, *, entry_id: str | None = None, digest: str | None = None) -> dict | None:
        assert (entry_id is None) != (digest is None)
        column, value = ("id", entry_id) if entry_id is not None else ("key_digest", digest)
        found = self.rows(f"select * from kv_entries where {column} = ?", (value,))
        return found[0] if found else None

    def files(self, entry_id: str) -> list[dict]:
        return self.rows("select * from kv_files where entry_id = ? order by layer", (entry_id,))

    def add_entry(self, row: dict, files: list[dict]) -> str | None:
        """Insert an entry and its files, replacing the entry of the same key; the replaced id or None."""
        with self.write() as db:
            old = list(db.query("select id from kv_entries where key_digest = ?", (row["key_digest"],)))
            for o in old:
                self._delete(db, o["id"])
            db["kv_entries"].insert(row)
            db["kv_files"].insert_all(files)
        return old[0]["id"] if old else None

    def delete_entry(self, entry_id: str) -> bool:
        with self.write() as db:
            return self._delete(db, entry_id)

    @staticmethod
    def _delete(db: Database, entry_id: str) -> bool:
        db.execute("delete from kv_files where entry_id = ?", (entry_id,))
        return db.execute("delete from kv_entries where id = ?", (entry_id,)).rowcount > 0

    def touch(self, entry_id: str) -> None:
        with self.write() as db:
            db.execute("update kv_entries set last_used_at = ? where id = ?", (time.time(), entry_id))

    def entries(self) -> list[dict]:
        """Every entry with the last known path of its video, most recently used first."""
        return self.rows(
            "select e.*, v.path as video_path from kv_entries e left join videos v on v.sha256 = e.video_sha256"
            " order by e.last_used_at desc"
        )

    def entry_ids(self) -> set[str]:
        return {r["id"] for r in self.rows("select id from kv_entries")}

    def ids_with_prefix(self, prefix: str) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return [r["id"] for r in self.rows("select id from kv_entries where id like ? escape '\\'", (escaped + "%",))]

    # -- videos and fingerprints ----------------------------------------------------------------
    def fingerprint_row(self, path: str) -> dict | None:
        found = self.rows("select * from fingerprints where path = ?", (path,))
        return found[0] if found else None

    def remember_fingerprint(self, row: dict) -> None:
        with self.write() as db:
            db["fingerprints"].upsert(row, pk="path")
            self._upsert_video(db, row["sha256"], row["path"], row["size"])

    def remember_video(self, sha256: str, path: str, size: int | None, *, overwrite: bool) -> None:
        """Record where a video lives; `overwrite=False` keeps an existing path (imports)."""
        with self.write() as db:
            if overwrite or not list(db.query("select 1 from videos where sha256 = ?", (sha256,))):
                self._upsert_video(db, sha256, path, size)

    @staticmethod
    def _upsert_video(db: Database, sha256: str, path: str, size: int | None) -> None:
        db["videos"].upsert({"sha256": sha256, "path": path, "size": size, "seen_at": time.time()}, pk="sha256")
