"""Instance-level `forward` replacement: how the engine plugs fused paths into transformers' modules
without forking modeling files or touching their classes (text norms, text rotary).

    n = set_forward(modules, fused_forward, "_omnivideo_x")   # modules that got it now (idempotent)
    n = clear_forward(modules, "_omnivideo_x")                # modules given their class forward back
"""
import types
from collections.abc import Callable, Iterable
from contextlib import contextmanager

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


@contextmanager
def temporary_forwards(marker: str):
    """A block in which `bind(module, forward, value)` gives a module `forward` and `value` (as the attribute
    `marker`) until the block ends; then each gets back the instance forward it had before (e.g. the NF4
    GEMV routing), or its class forward, and loses the attribute. The prefill rounds' weight swaps use it."""
    saved = []

    def bind(module: nn.Module, forward: Callable, value) -> None:
        setattr(module, marker, value)
        saved.append((module, module.__dict__.get("forward")))
        module.forward = types.MethodType(forward, module)

    try:
        yield bind
    finally:
        for module, forward in saved:
            del module.forward
            if forward is not None:
                module.forward = forward
            delattr(module, marker)


def clear_forward(modules: Iterable[nn.Module], marker: str) -> int:
    """Remove the instance forward of each module marked `marker`; returns how many were marked."""
    count = 0
    for module in modules:
        if getattr(module, marker, False):
            del module.forward
            delattr(module, marker)
            count += 1
    return count
