"""The GPU memory budget of a run, and where a video's KV lives under it: on the GPU, or in host memory.

`--gpu-memory GB` is enforced (the allocator refuses to grow past it), not only planned for. A prefix
whose KV would not fit next to the resident weights and a prefill chunk's activations keeps it in host
memory, streamed to the GPU a layer at a time (ingest: omnivideo/engine/prefill/host_rounds.py; questions:
omnivideo/engine/prefill/question_prefill.py), so an hour of video still answers on a small GPU.

    enforce_budget(loaded, config)               # once, after loading
    kv_on_host(loaded, config, prefix_tokens)    # True -> ingest / load into a HostKVCache
"""
import torch

from omnivideo.app.config import AppConfig
from omnivideo.app.video.planner import kv_fits_gpu
from omnivideo.engine.loading import LoadedModel


def enforce_budget(loaded: LoadedModel, config: AppConfig) -> None:
    if config.gpu_memory_gb is not None and loaded.device.type == "cuda":
        total = torch.cuda.get_device_properties(loaded.device).total_memory
        # The allocator wants an indexed device: a model loaded on plain "cuda" lives on the current one.
        index = loaded.device.index if loaded.device.index is not None else torch.cuda.current_device()
        torch.cuda.set_per_process_memory_fraction(min(1.0, config.gpu_memory_gb * 2**30 / total), index)


def gpu_budget_bytes(loaded: LoadedModel, config: AppConfig) -> int | None:
    """The GPU memory this run may use: --gpu-memory, else the whole GPU; None on a CPU."""
    if loaded.device.type != "cuda":
        return None
    total = torch.cuda.get_device_properties(loaded.device).total_memory
    return min(total, int(config.gpu_memory_gb * 2**30)) if config.gpu_memory_gb else total


def kv_on_host(loaded: LoadedModel, config: AppConfig, prefix_tokens: int) -> bool:
    """Whether the weights already resident, this prefix's KV and a prefill chunk's activations exceed the
    budget (then the KV stays in host memory)."""
    budget = gpu_budget_bytes(loaded, config)
    if budget is None:
        return False
    text = loaded.text_config
    layers, kv_heads, head_dim = loaded.family.kv_shape(text)   # Qwen3-VL-4B: head dim 128, not hidden / heads
    per_token = 2 * layers * kv_heads * head_dim * loaded.dtype.itemsize
    resident = torch.cuda.memory_allocated(loaded.device)
    return not kv_fits_gpu(prefix_tokens * per_token, resident, config.chunk_size, text.hidden_size, budget)


def memory_report(loaded: LoadedModel, config: AppConfig, on_host: bool) -> dict:
    """`ask --json` "memory": where the KV lives, the budget, and the process's peak GPU allocation."""
    device = loaded.device
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"kv_placement": "host" if on_host else ("gpu" if device.type == "cuda" else "cpu"),
            "gpu_budget_bytes": gpu_budget_bytes(loaded, config), "peak_gpu_bytes": peak}
