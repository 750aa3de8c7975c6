"""One layer's K/V on disk: a safetensors-format file written in one pass and read zero-copy.

The file is plain safetensors (`safetensors.torch.load_file` reads it), but we write and read it
ourselves: writing streams the tensor memory straight to the file while checksumming it (no
serialized copy of the layer), and reading maps the file (CPU) or lands it in one pinned buffer
(for a GPU), checksums it and views it as the tensors: one read and one hash pass per load.

    nbytes, tag = write_layer_file(path, {"k": k, "v": v})        # k, v: [Hkv, N, d], any device
    tensors = read_layer_file(fd, nbytes, tag)                     # {"k": ..., "v": ...} on CPU
"""
import json
import mmap
import os
import sys

import torch

from omnivideo.errors import CacheEntryCorrupt

from .checksum import hasher_for, new_hasher

assert sys.byteorder == "little", "safetensors files are little-endian; big-endian hosts are not supported"

DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL", torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
}
DTYPES = {name: dtype for dtype, name in DTYPE_NAMES.items()}
_CHUNK = 8 << 20


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of a tensor, copied to CPU only when it is not already a contiguous CPU tensor."""
    t = t.detach().to("cpu").contiguous()
    return memoryview(t.reshape(-1).view(torch.uint8).numpy()).cast("B")


def write_all(fd: int, data: memoryview) -> None:
    # os.write may write less than asked (Linux caps one call at ~2 GiB): loop until done
    while len(data):
        data = data[os.write(fd, data):]


def write_layer_file(path: str | os.PathLike, tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str] | None = None) -> tuple[int, str]:
    """Create `path` (must not exist), write `tensors` in safetensors format, fsync it.

    Returns (file size in bytes, checksum tag of the whole file). OSError (ENOSPC, EFBIG...) is
    left to the caller, which owns the temporary directory.
    """
    buffers, header, offset = [], {}, 0
    for name, t in tensors.items():
        assert t.dtype in DTYPE_NAMES, f"unsupported dtype {t.dtype} for tensor {name!r}"
        data = _tensor_bytes(t)
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        buffers.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = dict(metadata)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # safetensors pads the header so tensor data starts 8-aligned
    prefix = len(head).to_bytes(8, "little") + head
    hasher = new_hasher().update(prefix)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        write_all(fd, memoryview(prefix))
        for data in buffers:
            hasher.update(data)
            write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(prefix) + offset, hasher.tag()


def _pread_into(fd: int, view: memoryview, what: str) -> None:
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], done)
        if got == 0:
            raise CacheEntryCorrupt(f"{what}: file ended after {done} of {len(view)} bytes")
        done += got


def _map_file(fd: int, nbytes: int) -> tuple[torch.Tensor, memoryview]:
    """A private (copy-on-write) mapping of the file: CPU tensors that view the page cache, no copy.

    Reading into fresh anonymous memory instead costs a page fault and a zero-fill per 4 KiB page
    plus a copy (1.6 GB/s from the page cache here); the mapping checksums at 3.8-25 GB/s hot.
    Caveat of every mmap loader (safetensors too): truncating the file while it is mapped raises
    SIGBUS. Stored files are never rewritten (a replaced entry gets a new directory) and unlinking
    is safe, so only an outside process truncating cache files could trigger it.
    """
    region = mmap.mmap(fd, nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    region.madvise(mmap.MADV_SEQUENTIAL)  # bigger readahead for the one sequential checksum pass
    return torch.frombuffer(region, dtype=torch.uint8), memoryview(region)  # the tensor keeps the mapping alive


def read_layer_file(fd: int, nbytes: int, checksum: str, *, pin: bool = False, what: str = "layer file") -> dict[str, torch.Tensor]:
    """Read a whole layer file, verify its size and checksum, return its tensors (CPU, views of one buffer).

    `pin` reads into page-locked memory (torch's caching host allocator reuses it layer after
    layer) so the caller's `.to("cuda", non_blocking=True)` is a true async DMA; otherwise the
    file is memory-mapped. Raises CacheEntryCorrupt on a size, checksum or header mismatch.
    """
    size = os.fstat(fd).st_size
    if size != nbytes:
        raise CacheEntryCorrupt(f"{what}: size {size} bytes, expected {nbytes} (truncated or overwritten)")
    if pin:
        buf = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        view = memoryview(buf.numpy()).cast("B")
        _pread_into(fd, view, what)
    else:
        buf, view = _map_file(fd, nbytes)
    actual = hasher_for(checksum).update(view).tag()
    if actual != checksum:
        raise CacheEntryCorrupt(f"{what}: checksum {actual} does not match the stored {checksum}")
    return _parse(buf, what)


def _parse(buf: torch.Tensor, what: str) -> dict[str, torch.Tensor]:
    try:
        head_len = int.from_bytes(buf[:8].numpy().tobytes(), "little")
        header = json.loads(buf[8:8 + head_len].numpy().tobytes())
        header.pop("__metadata__", None)
        start = 8 + head_len
        out = {}
        for name, spec in header.items():
            lo, hi = spec["data_offsets"]
            dtype = DTYPES[spec["dtype"]]
            out[name] = buf[start + lo:start + hi].view(dtype).view(spec["shape"])
        return out
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        # the checksum matched, so only a writer bug or a foreign file gets here
        raise CacheEntryCorrupt(f"{what}: unreadable safetensors header ({e})") from e


def checksum_file(fd: int, algorithm_of: str) -> str:
    """Checksum of a whole open file with the algorithm of the tag `algorithm_of`, read in 8 MiB chunks."""
    hasher, offset = hasher_for(algorithm_of), 0
    while chunk := os.pread(fd, _CHUNK, offset):
        hasher.update(chunk)
        offset += len(chunk)
    return hasher.tag()
