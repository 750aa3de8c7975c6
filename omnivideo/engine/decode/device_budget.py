"""How much packed decode KV may live on the GPU, next to what a run already holds there.

A question about a video whose KV is in host memory packs each layer's kept rows during the question
prefill (omnivideo/engine/decode/slim_decode.py). With every row kept (gamma_decode = 1), packing them
all on the GPU is the whole KV again: a 240K-token prefix of a 7B (13.8 GB) ran out of a 16 GiB budget
on the H200 at the 20th layer. Layers past this budget are packed into host memory instead and staged
per decode step.

    budget = packed_kv_budget(device, layer_bytes, queries_per_kv=7, staged_prefill=True)   # None on a CPU
"""
import torch


def headroom_layers(queries_per_kv: int, staged_prefill: bool) -> int:
    """Full-KV layers' worth of GPU memory the question prefill and decode need besides the packs: the dense
    question attention expands GQA K and V (2 x queries_per_kv layers), a streamed prefill stages two."""
    return 2 * queries_per_kv + (2 if staged_prefill else 0)


def packed_kv_budget(device: torch.device, layer_bytes: int, queries_per_kv: int,
                     staged_prefill: bool) -> int | None:
    """Bytes of packed KV allowed on `device` now: the smaller of the process's cap (--gpu-memory, enforced as
    a memory fraction) and what the GPU has free, less the allocations made so far and the headroom.
    layer_bytes: one layer's full K + V of the conversation. None on a CPU (no limit)."""
    if device.type != "cuda":
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    total = torch.cuda.get_device_properties(index).total_memory
    cap = int(total * torch.cuda.get_per_process_memory_fraction(index))
    free, _ = torch.cuda.mem_get_info(index)
    allocated = torch.cuda.memory_allocated(index)
    room = min(cap - allocated, free + torch.cuda.memory_reserved(index) - allocated)
    return max(0, room - headroom_layers(queries_per_kv, staged_prefill) * layer_bytes)
