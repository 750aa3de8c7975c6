"""Schema migrations: idempotent, WAL on, safe when two openers race on a fresh root."""
import threading

from sqlite_utils import Database

from omnivideo.storage import KVStore
from omnivideo.storage.index import Index
from omnivideo.storage.migrations import MIGRATIONS

TABLES = {"fingerprints", "videos", "kv_entries", "kv_files", "sessions", "messages", "_sqlite_migrations"}


def _schema(db: Database) -> list[tuple]:
    return sorted((r["type"], r["name"], r["sql"]) for r in db.query("select type, name, sql from sqlite_master"))


def test_apply_twice_is_a_no_op(tmp_path):
    db = Database(tmp_path / "index.db")
    MIGRATIONS.apply(db)
    schema, applied = _schema(db), [m.name for m in MIGRATIONS.applied(db)]
    assert TABLES <= set(db.table_names())
    assert applied == [m.name for m in MIGRATIONS._migrations]
    MIGRATIONS.apply(db)
    assert _schema(db) == schema
    assert [m.name for m in MIGRATIONS.applied(db)] == applied
    assert db.execute("select count(*) from _sqlite_migrations").fetchone()[0] == len(applied)
    assert MIGRATIONS.pending(db) == []


def test_reopening_keeps_data_and_uses_wal(tmp_path):
    with KVStore(tmp_path / "cache") as s:
        sid = s.create_session("a" * 64, "tiny", "kept")
        assert s.index.db.journal_mode == "wal"
    with KVStore(tmp_path / "cache") as s:
        assert s.get_session(sid)["title"] == "kept"
        assert len(MIGRATIONS.applied(s.index.db)) == len(MIGRATIONS._migrations)


def test_concurrent_first_opens_create_the_schema_once(tmp_path):
    errors, indexes = [], []

    def open_index():
        try:
            indexes.append(Index(tmp_path / "index.db"))
        except Exception as e:  # collected and asserted below, so a failure shows its message
            errors.append(e)

    threads = [threading.Thread(target=open_index) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(indexes) == 4
    assert indexes[0].rows("select count(*) n from _sqlite_migrations")[0]["n"] == len(MIGRATIONS._migrations)
    for index in indexes:
        index.close()
