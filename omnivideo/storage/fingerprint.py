"""Content fingerprint of a video: sha256 of its bytes, hashed once and remembered.

The memo is keyed by absolute path and checked against (size, mtime_ns, ctime_ns, inode): a file
rewritten in place, or replaced by another with its mtime forged back (`cp -p`, `touch -d`), still
changes ctime or inode and is rehashed. A stat is all a warm lookup costs; the file is not opened.

    sha = fingerprint(index, "/videos/talk.mp4")   # first call reads the file (~1.8 GB/s), later calls stat it
"""
import hashlib
import os
import time
from pathlib import Path

from omnivideo.errors import VideoError

from .index import Index

_CHUNK = 8 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex of a file's bytes (hashlib releases the GIL, so other threads keep running)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _identity(st: os.stat_result) -> dict:
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def fingerprint(index: Index, path: str | os.PathLike) -> str:
    """sha256 of the file at `path`; raises VideoError if it cannot be read."""
    abs_path = str(Path(path).resolve())
    try:
        before = os.stat(abs_path)
        if not os.path.isfile(abs_path):
            raise VideoError(f"{abs_path} is not a regular file")
        known = index.fingerprint_row(abs_path)
        identity = _identity(before)
        if known is not None and all(known[k] == v for k, v in identity.items()):
            return known["sha256"]
        sha = sha256_file(abs_path)
        after = os.stat(abs_path)
    except OSError as e:
        raise VideoError(f"cannot read video {abs_path}: {e.strerror or e}") from e
    if _identity(after) != identity:
        # written to while we hashed: the hash belongs to no stable version, so do not remember it
        raise VideoError(f"{abs_path} changed while it was being fingerprinted; try again when it is complete")
    index.remember_fingerprint({"path": abs_path, **identity, "sha256": sha, "hashed_at": time.time()})
    return sha
