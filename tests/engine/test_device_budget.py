"""packed_kv_budget: what a question may pack on the GPU next to what the run already holds there."""
import pytest
import torch

from omnivideo.engine.decode.device_budget import headroom_layers, packed_kv_budget


def test_no_limit_on_a_cpu_and_the_headroom_counts_gqa_expansion_and_staging():
    assert packed_kv_budget(torch.device("cpu"), 1 << 20, 7, staged_prefill=True) is None
    assert headroom_layers(7, staged_prefill=True) == 16      # a 7B: what the 256K decode bench ran under
    assert headroom_layers(4, staged_prefill=False) == 8


@pytest.mark.gpu
def test_the_budget_follows_the_cap_and_what_is_allocated():
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(4 * 2**30 / total)
    try:
        layer = 64 << 20
        before = packed_kv_budget(device, layer, 2, staged_prefill=True)
        held = torch.empty(512 << 20, dtype=torch.uint8, device=device)
        after = packed_kv_budget(device, layer, 2, staged_prefill=True)
        assert before <= 4 * 2**30 - 6 * layer and before - after == held.numel()
        assert packed_kv_budget(device, 2**30, 2, staged_prefill=True) == 0     # 6 GiB of headroom > 4 GiB cap
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
