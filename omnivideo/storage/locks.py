"""Inter-process file locks (fcntl.flock) whose lock files can be deleted safely.

A plain flock on a path races with deleting the path: a waiter may hold a lock on an unlinked
inode while a newcomer locks a fresh file of the same name. `FileLock` re-checks after locking that
the path still names the locked inode, and retries otherwise, so `remove_if_idle` may clean up.

    with FileLock(root / "locks" / f"{digest}.lock"):
        ...   # one process at a time, across processes and threads
"""
import fcntl
import os
import time
from pathlib import Path

from omnivideo.errors import CacheError


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


def try_flock(path: Path, *, blocking: bool) -> int | None:
    """Open and exclusively flock `path` (created if missing); the fd, or None if busy (non-blocking)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            return fd
        os.close(fd)  # the file was removed while we waited: lock the new one instead


class FileLock:
    """Exclusive lock held between __enter__ and __exit__. `timeout` None waits forever."""

    def __init__(self, path: Path, timeout: float | None = None, poll_s: float = 0.05):
        self.path, self.timeout, self.poll_s = Path(path), timeout, poll_s
        self._fd: int | None = None

    def __enter__(self) -> "FileLock":
        assert self._fd is None, "FileLock is not re-entrant"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.timeout is None:
            self._fd = try_flock(self.path, blocking=True)
            return self
        deadline = time.monotonic() + self.timeout
        while (fd := try_flock(self.path, blocking=False)) is None:
            if time.monotonic() >= deadline:
                raise CacheError(f"timed out after {self.timeout:.0f} s waiting for the lock {self.path}")
            time.sleep(self.poll_s)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        os.close(self._fd)  # closing the fd releases the flock
        self._fd = None


def remove_if_idle(path: Path) -> bool:
    """Delete a lock file nobody holds; True if it was removed."""
    fd = try_flock(path, blocking=False) if path.exists() else None
    if fd is None:
        return False
    try:
        path.unlink()
    finally:
        os.close(fd)
    return True
