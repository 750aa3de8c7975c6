"""Persistent video KV store: SQLite index, checksummed layer files, locks, sessions.

    from omnivideo.storage import KVStore, CacheKey
    store = KVStore(data_dir / "cache", budget_bytes=50 << 30)

Imports nothing from the project but `omnivideo.errors` (layers: storage -> engine -> kernels).
"""
from .entry import StoredEntry
from .keys import FORMAT_VERSION, CacheKey
from .kv_store import KVStore
from .sessions import SessionStore

__all__ = ["CacheKey", "FORMAT_VERSION", "KVStore", "SessionStore", "StoredEntry"]
