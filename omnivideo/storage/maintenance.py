"""Store upkeep: LRU budget, garbage collection and verification (`cache gc`, `cache verify`).

gc never removes what a live writer owns: temp and freshly renamed directories carry a flocked
`.writing` file, and an orphan is only removed after re-checking, under that lock, that no index
row appeared for it in the meantime.

    report = store.gc()        # {"evicted": [...], "temp_removed": [...], "bytes_freed": ..., ...}
    report = store.verify()    # {"ok": [...], "corrupt": [...], "orphan_dirs": [...], ...}
"""
import logging
import os
import shutil
import time
from pathlib import Path

from omnivideo.errors import CacheError

from .entry_writer import ENTRIES_DIR, TMP_DIR, WRITING_NAME
from .locks import remove_if_idle, try_flock
from .tensor_files import checksum_file


log = logging.getLogger(__name__)
_UNLOCKED_GRACE_S = 60.0  # a writer creates tmp/<id>/.writing right after mkdir: only older bare dirs are stale


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def enforce_budget(store, keep: str | None = None) -> list[str]:
    """Evict least-recently-used entries until the total fits the budget; the evicted ids.

    `keep` (a just-written entry) is never evicted for others; if it alone exceeds the budget it
    is dropped and CacheError raised, rather than emptying the cache for nothing.
    """
    if store.budget_bytes is None:
        return []
    rows = sorted(store.index.entries(), key=lambda r: r["last_used_at"])
    total = sum(r["nbytes"] for r in rows)
    kept = next((r for r in rows if r["id"] == keep), None)
    if kept is not None and kept["nbytes"] > store.budget_bytes:
        store.drop(keep)
        raise CacheError(f"the entry needs {kept['nbytes'] / 2**30:.2f} GiB, more than the whole cache budget "
                         f"({store.budget_bytes / 2**30:.2f} GiB): not stored; raise the budget to keep it")
    evicted = []
    for r in rows:
        if total <= store.budget_bytes:
            break
        if r["id"] != keep:
            store.drop(r["id"])
            total -= r["nbytes"]
            evicted.append(r["id"])
    if evicted:
        log.info("cache budget %.2f GiB: evicted %d least recently used entries", store.budget_bytes / 2**30, len(evicted))
    return evicted


def _remove_if_abandoned(directory: Path, still_wanted, grace_s: float = 0.0) -> int | None:
    """Remove `directory` unless a live writer holds its .writing lock or `still_wanted()`; bytes freed or None.

    A directory without a .writing file is left alone for `grace_s` after its last change.
    """
    marker = directory / WRITING_NAME
    fd = None
    if marker.exists():
        fd = try_flock(marker, blocking=False)
        if fd is None:
            return None  # a live writer
    elif time.time() - directory.stat().st_mtime < grace_s:
        return None
    try:
        if still_wanted():
            return None
        freed = _dir_bytes(directory)
        shutil.rmtree(directory, ignore_errors=True)
        return freed
    finally:
        if fd is not None:
            os.close(fd)


def gc(store) -> dict:
    report = {"temp_removed": [], "orphans_removed": [], "rows_dropped": [], "evicted": [], "locks_removed": 0, "bytes_freed": 0}
    for d in sorted(p for p in (store.root / TMP_DIR).iterdir() if p.is_dir()):
        freed = _remove_if_abandoned(d, lambda: False, grace_s=_UNLOCKED_GRACE_S)
        if freed is not None:
            report["temp_removed"].append(d.name)
            report["bytes_freed"] += freed
    ids = store.index.entry_ids()
    for d in sorted(p for p in (store.root / ENTRIES_DIR).iterdir() if p.is_dir()):
        if d.name in ids:
            continue
        # re-checked under the lock: a writer renames its directory first, adds the row second and
        # only then unlinks .writing, so a directory without .writing and without a row is garbage
        freed = _remove_if_abandoned(d, lambda name=d.name: store.index.entry(entry_id=name) is not None)
        if freed is not None:
            report["orphans_removed"].append(d.name)
            report["bytes_freed"] += freed
    for row in store.index.entries():
        if not store.entry_dir(row["id"]).is_dir():
            store.drop(row["id"])
            report["rows_dropped"].append(row["id"])
    before = store.total_bytes()
    report["evicted"] = enforce_budget(store)
    report["bytes_freed"] += before - store.total_bytes()
    report["locks_removed"] = sum(remove_if_idle(p) for p in (store.root / "locks").glob("*.lock"))
    report["total_bytes"] = store.total_bytes()
    return report


def _check_file(path: Path, f: dict) -> str | None:
    """Why the file is bad, or None if its size and checksum match."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return "missing"
    try:
        size = os.fstat(fd).st_size
        if size != f["nbytes"]:
            return f"size {size} bytes, expected {f['nbytes']}"
        actual = checksum_file(fd, f["checksum"])
        return None if actual == f["checksum"] else f"checksum {actual}, expected {f['checksum']}"
    finally:
        os.close(fd)


def verify(store, *, repair: bool = False) -> dict:
    report = {"ok": [], "corrupt": [], "orphan_dirs": [], "temp_dirs": [], "bytes_checked": 0}
    rows = store.index.entries()
    for row in rows:
        problems = []
        for f in store.index.files(row["id"]):
            try:
                reason = _check_file(store.entry_dir(row["id"]) / f["name"], f)
            except CacheError as e:  # e.g. an algorithm this install cannot compute
                reason = str(e)
            report["bytes_checked"] += f["nbytes"] if reason is None else 0
            if reason is not None:
                problems.append({"id": row["id"], "file": f["name"], "reason": reason})
        if problems:
            report["corrupt"].extend(problems)
        else:
            report["ok"].append(row["id"])
    ids = {r["id"] for r in rows}
    report["orphan_dirs"] = sorted(d.name for d in (store.root / ENTRIES_DIR).iterdir() if d.name not in ids)
    report["temp_dirs"] = sorted(d.name for d in (store.root / TMP_DIR).iterdir())
    if repair:
        for bad in sorted({p["id"] for p in report["corrupt"]}):
            log.warning("dropping corrupt cache entry %s", bad)
            store.drop(bad)
        report["gc"] = gc(store)
    return report
