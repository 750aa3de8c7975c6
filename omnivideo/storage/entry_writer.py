"""Atomic creation of one entry directory: build in root/tmp/<id>/, fsync, rename to root/entries/<id>/.

Readers only ever find an entry through its index row, and the row is written after the rename,
so a crash at any point leaves either nothing visible or a complete entry:
  crash while writing layers     -> root/tmp/<id>/ leftover, removed by gc
  crash after rename, before row -> root/entries/<id>/ without a row (orphan), removed by gc
While a writer is alive it holds a flock on <dir>/.writing, which tells gc to keep its hands off.

    with EntryWriter(root, entry_id) as w:
        for k, v in layers: w.add_layer(k, v)
        w.commit(manifest)            # files durable and renamed into place
        index.add_entry(...)          # an exception here removes the directory again
"""
import errno
import json
import os
import shutil
from pathlib import Path

import torch

from omnivideo.errors import CacheEntryCorrupt, DiskFullError

from .checksum import hasher_for
from .locks import try_flock
from .tensor_files import write_all, write_layer_file

ENTRIES_DIR, TMP_DIR = "entries", "tmp"
MANIFEST_NAME, WRITING_NAME = "manifest.json", ".writing"
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def layer_name(i: int) -> str:
    return f"layer_{i:04d}.safetensors"


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file inside `path` durable (the directory entry itself)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EntryWriter:
    def __init__(self, root: Path, entry_id: str):
        self.final_dir = root / ENTRIES_DIR / entry_id
        self.dir = root / TMP_DIR / entry_id
        self.files: list[dict] = []
        self._lock_fd: int | None = None

    def __enter__(self) -> "EntryWriter":
        self.dir.mkdir(parents=True)
        self._lock_fd = try_flock(self.dir / WRITING_NAME, blocking=True)
        return self

    def add_layer(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the next layer's K and V ([Hkv, N, d] each) as one durable file."""
        name = layer_name(len(self.files))
        nbytes, checksum = write_layer_file(self.dir / name, {"k": k, "v": v})
        self.files.append({"layer": len(self.files), "name": name, "nbytes": nbytes, "checksum": checksum})

    def add_layer_stream(self, stream, nbytes: int, checksum: str, chunk: int = 8 << 20) -> None:
        """Copy the next layer file from a binary stream (an archive member), verifying its checksum."""
        name = layer_name(len(self.files))
        hasher, written = hasher_for(checksum), 0
        fd = os.open(self.dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            while data := stream.read(chunk):
                hasher.update(data)
                write_all(fd, memoryview(data))
                written += len(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if written != nbytes or hasher.tag() != checksum:
            raise CacheEntryCorrupt(f"{name}: {written} bytes with checksum {hasher.tag()}, the manifest says "
                                    f"{nbytes} bytes with {checksum}")
        self.files.append({"layer": len(self.files), "name": name, "nbytes": nbytes, "checksum": checksum})

    def commit(self, manifest: dict) -> Path:
        """Write the manifest, make everything durable, move the directory into entries/."""
        path = self.dir / MANIFEST_NAME
        with open(path, "x", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.dir)
        self.final_dir.parent.mkdir(exist_ok=True)
        os.rename(self.dir, self.final_dir)
        self.dir = self.final_dir
        fsync_dir(self.final_dir.parent)
        return self.final_dir

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            (self.dir / WRITING_NAME).unlink(missing_ok=True)
        os.close(self._lock_fd)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            written = sum(f["nbytes"] for f in self.files)
            raise DiskFullError(
                f"not enough disk space to store the KV cache entry under {self.final_dir.parent.parent} "
                f"({os.strerror(exc.errno)} after {written / 2**20:.1f} MiB in {len(self.files)} layer files); "
                "partial files were removed and the cache index is unchanged: free space or lower the cache budget"
            ) from exc
