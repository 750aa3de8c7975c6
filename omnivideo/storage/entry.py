"""StoredEntry: a stored prefix KV, loaded layer by layer with checksum verification.

The layer files are opened when the entry is looked up, so an eviction or `cache rm` in another
process cannot pull the files away halfway through a load (unlinked files stay readable while
open). Close the entry (or use it as a context manager) when done.

    with store.get(key) as entry:
        for i, (k, v) in enumerate(entry.iter_layers("cuda")):   # k, v: [Hkv, N, d]
            cache.layers[i].load(k, v)
"""
import json
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from .tensor_files import read_layer_file


class StoredEntry:
    """Attributes: id, key_digest, meta (dict), num_layers, num_tokens, nbytes, dtype, directory, row (index row)."""

    def __init__(self, row: dict, files: list[dict], directory: Path):
        self._fds: list[int] = []
        assert [f["layer"] for f in files] == list(range(row["num_layers"])), "layer rows must be 0..L-1"
        self.row = row
        self.id: str = row["id"]
        self.key_digest: str = row["key_digest"]
        self.meta: dict = json.loads(row["meta_json"])
        self.num_layers: int = row["num_layers"]
        self.num_tokens: int = row["num_tokens"]
        self.nbytes: int = row["nbytes"]
        self.dtype: str = row["dtype"]
        self.directory = directory
        self._files = files
        try:
            for f in files:
                self._fds.append(os.open(directory / f["name"], os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            self.close()
            raise

    def _read(self, i: int, pin: bool) -> dict[str, torch.Tensor]:
        assert self._fds, f"entry {self.id} is closed"
        f = self._files[i]
        what = f"cache entry {self.id} layer {i} ({self.directory / f['name']})"
        return read_layer_file(self._fds[i], f["nbytes"], f["checksum"], pin=pin, what=what)

    @staticmethod
    def _place(tensors: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = tensors["k"], tensors["v"]
        if device.type != "cpu":
            # the buffer is pinned, so this is an async DMA that overlaps the next layer's read
            k, v = k.to(device, non_blocking=True), v.to(device, non_blocking=True)
        return k, v

    def load_layer(self, i: int, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of layer `i`, each [Hkv, N, d] in the stored dtype; raises CacheEntryCorrupt on a bad file."""
        device = torch.device(device)
        return self._place(self._read(i, pin=device.type == "cuda"), device)

    def iter_layers(self, device: str | torch.device = "cpu", prefetch: int = 2) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Layers 0..L-1 in order while background threads read and verify the next `prefetch` ones.

        Two reader threads let one layer's disk read overlap the previous layer's checksum pass
        (file reads and both hashes release the GIL).
        """
        device = torch.device(device)
        pin = device.type == "cuda"
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kv-load")
        pending: list[Future] = []
        try:
            for i in range(self.num_layers):
                while len(pending) <= prefetch and i + len(pending) < self.num_layers:
                    pending.append(pool.submit(self._read, i + len(pending), pin))
                yield self._place(pending.pop(0).result(), device)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def file_paths(self) -> list[Path]:
        return [self.directory / f["name"] for f in self._files]

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def __enter__(self) -> "StoredEntry":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self) -> str:
        return f"StoredEntry({self.id}, {self.num_layers} layers, {self.num_tokens} tokens, {self.nbytes / 2**20:.1f} MiB)"
