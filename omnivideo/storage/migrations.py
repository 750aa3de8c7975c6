"""Schema of the storage index (root/index.db), as sqlite-utils migrations.

Each step runs once per database, in a transaction together with its record in
`_sqlite_migrations`, so `MIGRATIONS.apply(db)` is safe to call on every open. To add a field:
append a new step here (never edit an applied one), update `Index`, add a round-trip test.

Tables:
  fingerprints  abs path -> sha256, remembered with the (size, mtime_ns, ctime_ns, inode) it was hashed at
  videos        sha256 -> last path seen, size (for `cache ls`)
  kv_entries    one stored prefix KV: key digest (unique), key JSON, meta JSON, sizes, last use
  kv_files      one row per layer file of an entry: name, size, checksum
  sessions      a chat about one video with one model
  messages      the turns of a session, in order
"""
from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("omnivideo.storage")


@MIGRATIONS()
def m001_initial(db: Database) -> None:
    db["fingerprints"].create(
        {"path": str, "size": int, "mtime_ns": int, "ctime_ns": int, "inode": int, "sha256": str, "hashed_at": float},
        pk="path", not_null={"size", "mtime_ns", "ctime_ns", "inode", "sha256"},
    )
    db["videos"].create(
        {"sha256": str, "path": str, "size": int, "seen_at": float},
        pk="sha256", not_null={"path"},
    )
    db["kv_entries"].create(
        {
            "id": str, "key_digest": str, "key_json": str, "video_sha256": str, "model_id": str,
            "model_revision": str, "quantization": str, "dtype": str, "attention_preset": str,
            "format_version": int, "num_layers": int, "num_tokens": int, "nbytes": int,
            "meta_json": str, "created_at": float, "last_used_at": float,
        },
        pk="id", not_null={"key_digest", "key_json", "video_sha256", "num_layers", "nbytes", "last_used_at"},
    )
    db["kv_entries"].create_index(["key_digest"], unique=True)
    db["kv_entries"].create_index(["last_used_at"])
    db["kv_files"].create(
        {"entry_id": str, "layer": int, "name": str, "nbytes": int, "checksum": str},
        pk=("entry_id", "layer"), not_null={"name", "nbytes", "checksum"},
        foreign_keys=[("entry_id", "kv_entries", "id")],
    )
    db["sessions"].create(
        {
            "id": str, "title": str, "video_sha256": str, "video_path": str, "model_id": str,
            "key_digest": str, "meta_json": str, "created_at": float, "updated_at": float,
        },
        pk="id", not_null={"video_sha256", "model_id", "created_at", "updated_at"},
    )
    db["sessions"].create_index(["updated_at"])
    db["messages"].create(
        {"id": int, "session_id": str, "seq": int, "role": str, "content": str, "meta_json": str, "created_at": float},
        pk="id", not_null={"session_id", "seq", "role", "content"},
        foreign_keys=[("session_id", "sessions", "id")],
    )
    db["messages"].create_index(["session_id", "seq"], unique=True)
