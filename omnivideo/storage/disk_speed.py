"""Load throughput of stored KV against the disk's own sequential read speed, measured in one run.

Both numbers are taken cold: the files' pages are dropped from the page cache first
(posix_fadvise DONTNEED after fsync; no root needed), and the two kinds of read alternate so disk
noise hits both. `bench cache` reports `measure(...)`; docs/storage.md quotes its output.

    python -m storage.disk_speed /path/on/the/cache/disk --gib 2 --repeats 3
"""
import argparse
import json
import mmap
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .entry import StoredEntry
from .keys import CacheKey

_BLOCK = 16 << 20
_BASELINES = {"sequential_read": {}, "sequential_read_direct": {"direct": True},
              "sequential_read_direct_2x": {"direct": True, "streams": 2}}


def drop_cached_pages(paths) -> None:
    """Evict the (clean) pages of `paths` from the page cache so the next read comes from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def write_probe_file(path: Path, nbytes: int) -> None:
    """`nbytes` of incompressible data, fsynced."""
    block = os.urandom(_BLOCK)
    with open(path, "wb") as f:
        for offset in range(0, nbytes, _BLOCK):
            f.write(block[:min(_BLOCK, nbytes - offset)])
        f.flush()
        os.fsync(f.fileno())


def sequential_read_gbps(path: Path, *, direct: bool = False, streams: int = 1) -> float:
    """Cold sequential read of one file in 16 MiB blocks, GB/s (10^9 bytes); 0.0 where unsupported.

    `direct` uses O_DIRECT (requests go straight to the device, no readahead limits; not on
    tmpfs). `streams` > 1 reads that many contiguous slices in parallel threads, as the loader's
    two reader threads do: the strictest baseline for "the disk's sequential read speed".
    """
    drop_cached_pages([path])
    size = path.stat().st_size
    span = -(-size // streams // _BLOCK) * _BLOCK  # slice starts stay block-aligned for O_DIRECT
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECT if direct else 0))
    except OSError:
        return 0.0

    def read_slice(lo: int) -> int:
        buf, offset, end = mmap.mmap(-1, _BLOCK), lo, min(lo + span, size)  # mmap: page-aligned
        while offset < end:
            # O_DIRECT needs whole blocks: only the file's last block may run past the end
            n = os.preadv(fd, [memoryview(buf)[:_BLOCK if end == size else min(_BLOCK, end - offset)]], offset)
            if n == 0:
                break
            offset += n
        return offset - lo

    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(streams) as pool:
            total = sum(pool.map(read_slice, range(0, size, span)))
    except OSError:  # EINVAL: O_DIRECT not supported by this filesystem
        return 0.0
    finally:
        os.close(fd)
    return total / (time.perf_counter() - start) / 1e9


def entry_load_gbps(entry: StoredEntry, device: str = "cpu", *, cold: bool = True, prefetch: int = 2) -> float:
    """Load every layer (read + checksum + tensor views, + copy to `device`), GB/s of file bytes."""
    if cold:
        drop_cached_pages(entry.file_paths())
    start = time.perf_counter()
    if prefetch > 0:
        for _ in entry.iter_layers(device, prefetch=prefetch):
            pass
    else:
        for i in range(entry.num_layers):
            entry.load_layer(i, device)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return entry.nbytes / (time.perf_counter() - start) / 1e9


def synthetic_layers(num_layers: int, kv_heads: int, tokens: int, head_dim: int, dtype=torch.bfloat16):
    """Random K/V shaped like a real prefix ([kv_heads, tokens, head_dim] per layer), made one layer at a time."""
    for _ in range(num_layers):
        yield (torch.randn(kv_heads, tokens, head_dim).to(dtype), torch.randn(kv_heads, tokens, head_dim).to(dtype))


def measure(directory: Path, gib: float = 1.0, repeats: int = 3, device: str = "cpu",
            num_layers: int = 28, kv_heads: int = 4, head_dim: int = 128) -> dict:
    """Median GB/s of: cold sequential read (buffered and O_DIRECT), cold entry load (prefetch 2 and 0),
    hot entry load; and put().

    The entry is Qwen2.5-VL-7B shaped by default (28 layers, 4 KV heads, d 128, bf16: 56 KiB/token).
    """
    from .kv_store import KVStore  # late: kv_store imports nothing from here, keep it that way

    bytes_per_token = num_layers * 2 * kv_heads * head_dim * 2
    tokens = int(gib * 2**30 / bytes_per_token)
    with tempfile.TemporaryDirectory(dir=directory, prefix="omnivideo-disk-speed-") as tmp:
        tmp = Path(tmp)
        key = CacheKey(video_sha256="0" * 64, sampling={}, model_id="disk-speed", model_revision="-",
                       quantization="none", dtype="bfloat16", prefix_tokens_sha256="0" * 64,
                       attention_preset="-", kernel_version="-")
        with KVStore(tmp / "cache") as store:
            layers = list(synthetic_layers(num_layers, kv_heads, tokens, head_dim))
            start = time.perf_counter()
            store.put(key, layers, {}).close()  # includes one fsync per layer file
            write_gbps = store.total_bytes() / (time.perf_counter() - start) / 1e9
            del layers
            write_probe_file(tmp / "probe.bin", store.total_bytes())
            runs: dict[str, list[float]] = {name: [] for name in (*_BASELINES, "load_prefetch2", "load_serial", "load_hot")}
            with store.get(key) as entry:
                for _ in range(repeats):
                    for name, kwargs in _BASELINES.items():
                        runs[name].append(sequential_read_gbps(tmp / "probe.bin", **kwargs))
                    runs["load_prefetch2"].append(entry_load_gbps(entry, device, prefetch=2))
                    runs["load_serial"].append(entry_load_gbps(entry, device, prefetch=0))
                    runs["load_hot"].append(entry_load_gbps(entry, device, cold=False))
                nbytes = entry.nbytes
    result = {name: round(statistics.median(v), 3) for name, v in runs.items()}
    # per repeat, against the fastest sequential read: a disk whose speed drifts (shared
    # VM) moves the numbers of one repeat together
    seq = [max(speeds) for speeds in zip(*(runs[name] for name in _BASELINES))]
    ratios = [load / s for load, s in zip(runs["load_prefetch2"], seq)]
    result["load_vs_sequential"] = round(statistics.median(ratios), 3)
    result["write"] = round(write_gbps, 3)
    return {"gbps": result, "runs": runs, "entry_bytes": nbytes, "tokens": tokens, "device": device}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path, help="a directory on the disk that will hold the cache")
    parser.add_argument("--gib", type=float, default=1.0, help="size of the test entry")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.directory, args.gib, args.repeats, args.device), indent=1))


if __name__ == "__main__":
    main()
