"""copy_corner: host <-> device copies of KV pieces, one contiguous piece per head at most."""
import pytest
import torch

from omnivideo.engine.prefill.layer_stager import copy_corner


def _count_copies(monkeypatch) -> list:
    calls = []
    original = torch.Tensor.copy_

    def counting(self, src, non_blocking=False):
        calls.append(tuple(src.shape))
        return original(self, src, non_blocking=non_blocking)

    monkeypatch.setattr(torch.Tensor, "copy_", counting)
    return calls


def test_a_head_split_host_source_lands_in_the_corner_one_copy_per_head(monkeypatch):
    buf = torch.arange(3 * 10 * 4, dtype=torch.float32).reshape(3, 10, 4)
    src = buf[:, :6]                       # the first 6 rows of every head: not contiguous, each head is
    dst = torch.zeros(3, 8, 4)
    calls = _count_copies(monkeypatch)
    copy_corner(dst, src)
    assert torch.equal(dst[:, :6], src) and not dst[:, 6:].any()
    assert calls == [(6, 4)] * 3


@pytest.mark.gpu
def test_a_transposed_device_source_goes_to_host_in_one_piece_per_head(monkeypatch):
    """transformers' K/V [Hkv, t, D] are views of [t, Hkv, D]: split row by row they were t * Hkv copies."""
    kv = torch.randn(4096, 4, 128, device="cuda", dtype=torch.bfloat16).transpose(0, 1)   # [4, 4096, 128]
    host = torch.zeros(4, 5000, 128, dtype=torch.bfloat16, pin_memory=True)
    calls = _count_copies(monkeypatch)
    copy_corner(host[:, 100:], kv, non_blocking=True)
    torch.cuda.synchronize()
    assert len(calls) <= 4
    assert torch.equal(host[:, 100:4196], kv.cpu()) and not host[:, :100].any()
