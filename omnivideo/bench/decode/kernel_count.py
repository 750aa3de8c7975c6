"""How many GPU kernels a call launches (CUDA only): the launch count of a decode step, by name.

Timing a step says how long it took; the kernel count says how many launches the non-GEMV part is
made of, which is what the fusions cut (issue 20: 385 kernels per token before the residual + norm
fusion). torch.profiler (CUPTI) reports the kernels of a replayed CUDA graph one by one.

    counts = kernel_counts(lambda: step(token, pos), calls=4)   # {"total": 329.0, "by_name": {...}}
"""
from collections import Counter

import torch


def kernel_counts(fn, calls: int = 4) -> dict:
    """Kernels (and device copies / fills) per call of `fn()` after one warm-up call, in total and per name
    (first 100 characters)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    names = Counter(ev.name[:100] for ev in prof.events() if ev.device_type == torch.autograd.DeviceType.CUDA)
    by_name = {name: round(count / calls, 2) for name, count in names.most_common()}
    return {"total": round(sum(names.values()) / calls, 2), "by_name": by_name}
