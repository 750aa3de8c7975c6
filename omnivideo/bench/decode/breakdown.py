"""Where a decode step's time goes (CUDA only): pieces of the step captured and timed on their own.

- nf4_matmuls: every NF4 `Linear4bit` of the decoder layers applied to one token, in one CUDA graph
  (the 196 batch-1 matmuls of a 7B step: bitsandbytes' fused 4-bit kernel), with the bytes they read;
- lm_head: the bf16 output projection of one token;
- the rest of a step (norms, RoPE, residuals, attention, tail appends) is the step time minus these.
Also the machine's achievable memory bandwidth (`measure_bandwidth`), which the floor divides by.

    pieces = step_breakdown(loaded)   # {"nf4_matmuls": {"ms", "bytes", "GBps", "count"}, "lm_head": {...}}
"""
import time

import torch

from omnivideo.bench.random_model import tensor_bytes


def graph_ms(fn, reps: int = 50) -> float:
    """Mean ms per replay of a CUDA graph of `fn()` (warmed up first on a side stream)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        graph.replay()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) / reps


def _piece(modules, dtype) -> dict:
    """Time the modules applied to one token each (input of their in_features) in one graph."""
    xs = {m.in_features: torch.randn(1, 1, m.in_features, dtype=dtype, device="cuda") for m in modules}
    with torch.inference_mode():
        ms = graph_ms(lambda: [m(xs[m.in_features]) for m in modules])
    nbytes = tensor_bytes(modules)
    return {"ms": round(ms, 3), "bytes": nbytes, "GBps": round(nbytes / ms / 1e6, 1), "count": len(modules)}


def step_breakdown(loaded) -> dict:
    import bitsandbytes as bnb

    lm = loaded.model.model.language_model
    nf4 = [m for m in lm.layers.modules() if isinstance(m, bnb.nn.Linear4bit)]
    return {"nf4_matmuls": _piece(nf4, loaded.dtype), "lm_head": _piece([loaded.model.lm_head], loaded.dtype)}


def measure_bandwidth(device: torch.device, nbytes: int = 1 << 30) -> float:
    """GB/s of a device-to-device copy (bytes read + written), the achievable memory bandwidth."""
    x = torch.empty(nbytes, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    reps = 10 if device.type == "cuda" else 2
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        y.copy_(x)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * nbytes * reps / (time.perf_counter() - t0) / 1e9
