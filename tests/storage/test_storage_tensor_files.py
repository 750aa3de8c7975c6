"""Layer files: real safetensors format, exact round trips, every corruption detected."""
import os

import pytest
import torch
from safetensors.torch import load_file

from omnivideo.errors import CacheEntryCorrupt
from omnivideo.storage.checksum import Hasher, hasher_for
from omnivideo.storage.tensor_files import checksum_file, read_layer_file, write_layer_file


def _tensors(dtype):
    g = torch.Generator().manual_seed(1)
    return {"k": torch.randn(2, 33, 16, generator=g).to(dtype), "v": torch.randn(2, 33, 16, generator=g).to(dtype)}


def _read(path, nbytes, tag):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_layer_file(fd, nbytes, tag)
    finally:
        os.close(fd)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.int8])
def test_round_trip_and_safetensors_compatible(tmp_path, dtype):
    tensors = _tensors(dtype) if dtype != torch.int8 else {"k": torch.arange(-64, 64, dtype=torch.int8).view(2, 4, 16)}
    path = tmp_path / "layer.safetensors"
    nbytes, tag = write_layer_file(path, tensors, metadata={"note": "x"})
    assert nbytes == path.stat().st_size
    back = _read(path, nbytes, tag)
    official = load_file(path)
    for name, t in tensors.items():
        assert back[name].dtype == t.dtype and torch.equal(back[name], t)
        assert torch.equal(official[name], t)


def test_checksum_tag_matches_both_algorithms(tmp_path):
    path = tmp_path / "layer.safetensors"
    nbytes, tag = write_layer_file(path, _tensors(torch.float32))
    data = path.read_bytes()
    assert hasher_for(tag).update(data).tag() == tag
    fd = os.open(path, os.O_RDONLY)
    try:
        assert checksum_file(fd, tag) == tag
        crc = Hasher("crc32").update(data).tag()
        assert checksum_file(fd, crc) == crc and crc.startswith("crc32:")
    finally:
        os.close(fd)


def test_refuses_to_overwrite(tmp_path):
    path = tmp_path / "layer.safetensors"
    write_layer_file(path, _tensors(torch.float32))
    with pytest.raises(FileExistsError):
        write_layer_file(path, _tensors(torch.float32))


@pytest.mark.parametrize("offset", [3, 200, -1])
def test_flipped_byte_is_detected(tmp_path, offset):
    path = tmp_path / "layer.safetensors"
    nbytes, tag = write_layer_file(path, _tensors(torch.bfloat16))
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(data)
    with pytest.raises(CacheEntryCorrupt, match="checksum"):
        _read(path, nbytes, tag)


def test_truncated_file_is_detected(tmp_path):
    path = tmp_path / "layer.safetensors"
    nbytes, tag = write_layer_file(path, _tensors(torch.float32))
    os.truncate(path, nbytes - 100)
    with pytest.raises(CacheEntryCorrupt, match="size"):
        _read(path, nbytes, tag)
