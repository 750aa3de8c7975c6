"""The identity of a local checkpoint: a digest of its files' contents, remembered by path and stat.

A checkpoint directory saved again with new weights (a fine-tune into the same folder) must not match
KV stored for the old weights, even when every file keeps its size. So each file is hashed in full
(xxh3-128, ~several GB/s) the first time it is seen, and the digest is remembered by path, size, mtime
and inode, as the video fingerprint is: loading the same files again costs a stat per file.

    revision = fingerprint_checkpoint(Path("~/ckpt"), memo=data_dir / "models" / ".fingerprints.json")
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

import xxhash

CHUNK = 16 << 20


def _file_digest(path: Path) -> str:
    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _load(memo: Path) -> dict:
    try:
        data = json.loads(memo.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(memo: Path, data: dict) -> None:
    """Atomic replace: a reader sees the old memo or the new one, never half of one."""
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fingerprints-", dir=memo.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, memo)
    except OSError:
        pass  # a read-only data dir costs a re-hash next time, nothing else


def fingerprint_checkpoint(root: Path, memo: Path | None = None) -> str:
    """Digest of every regular file directly in `root` (names and contents), e.g. "xxh3:5f0c...".

    memo: JSON file remembering each file's digest by (size, mtime_ns, inode); None hashes every time."""
    known = _load(memo) if memo is not None else {}
    changed = False
    h = hashlib.sha256()
    for path in sorted(p for p in Path(root).iterdir() if p.is_file() and not p.name.startswith(".")):
        st = path.stat()
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        entry = known.get(str(path.resolve()))
        if entry is None or entry.get("stat") != stamp:
            entry = {"stat": stamp, "digest": _file_digest(path)}
            known[str(path.resolve())] = entry
            changed = True
        h.update(f"{path.name}\0{entry['digest']}\0".encode())
    if memo is not None and changed:
        _save(memo, known)
    return "xxh3:" + h.hexdigest()[:32]
