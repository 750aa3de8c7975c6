"""Instance-level `forward` replacement: how the engine plugs fused paths into transformers' modules
without forking modeling files or touching their classes (text norms, text rotary).

    n = set_forward(modules, fused_forward, "_omnivideo_x")   # modules that got it now (idempotent)
    n = clear_forward(modules, "_omnivideo_x")                # modules given their class forward back
"""
import types
from collections.abc import Callable, Iterable

from torch import nn


def set_forward(modules: Iterable[nn.Module], forward: Callable, marker: str) -> int:
    """Bind `forward` on each module that has no instance forward yet (ours already, or someone else's
    hook, is left alone) and mark it with the attribute `marker`; returns how many were set now."""
    count = 0
    for module in modules:
        if getattr(module, marker, False) or "forward" in module.__dict__:
            continue
        module.forward = types.MethodType(forward, module)
        setattr(module, marker, True)
        count += 1
    return count


def clear_forward(modules: Iterable[nn.Module], marker: str) -> int:
    """Remove the instance forward of each module marked `marker`; returns how many were marked."""
    count = 0
    for module in modules:
        if getattr(module, marker, False):
            del module.forward
            delattr(module, marker)
            count += 1
    return count
