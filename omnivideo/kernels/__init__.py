"""OmniVideo's Triton kernels, each beside the pure-PyTorch reference that defines it, and the one switch
that decides which of the two runs.

Each op folder holds its kernels, a launcher that checks shapes, strides and dtypes, and `reference.py`
(or `<op>_reference.py`): the spec the kernels are tested against. This package imports nothing from
the rest of the project.

The switch, read on every call (so a test's override takes effect at once):
- "auto" (default): Triton for CUDA tensors, the reference for everything else (Triton needs a GPU;
  on a CPU it only runs under TRITON_INTERPRET=1, in numpy, far too slowly for real use);
- "triton": Triton wherever it can run: CUDA, or CPU tensors under TRITON_INTERPRET=1 that are not
  bf16 (the interpreter's bf16 `tl.dot` is wrong): what the CPU tests use to run the kernels;
- "reference": the references everywhere (a debugging aid, and the baseline of a kernel's test).
It comes from `set_backend` / `backend` (tests), else the environment variable OMNIVIDEO_KERNELS.

    from omnivideo.kernels import use_triton
    out = kernel(x) if use_triton(x.device, x.dtype) else reference(x)
    with backend("triton"): ...          # tests: run the kernels under the interpreter
"""
import contextlib
import logging
import os

import torch

BACKENDS = ("auto", "triton", "reference")
ENV = "OMNIVIDEO_KERNELS"
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"  # read once: kernels are decorated at import

log = logging.getLogger(__name__)
_override: str | None = None
_logged: set[tuple[str, str]] = set()


def _mode() -> str:
    mode = _override or os.environ.get(ENV, "auto") or "auto"
    if mode not in BACKENDS:
        raise ValueError(f"{ENV} must be one of {', '.join(BACKENDS)}, got {mode!r}")
    return mode


def set_backend(mode: str | None) -> None:
    """Force "auto" / "triton" / "reference" for this process (None: back to $OMNIVIDEO_KERNELS or auto)."""
    global _override
    if mode is not None and mode not in BACKENDS:
        raise ValueError(f"kernel backend must be one of {', '.join(BACKENDS)}, got {mode!r}")
    _override = mode


@contextlib.contextmanager
def backend(mode: str):
    """`set_backend(mode)` for the duration of a block (tests), then the previous setting."""
    global _override
    saved = _override
    set_backend(mode)
    try:
        yield
    finally:
        _override = saved


def decide(device: torch.device | str, dtype: torch.dtype | None = None) -> tuple[bool, str]:
    """(Triton runs?, why) for tensors of `dtype` on `device`."""
    device = torch.device(device)
    mode = _mode()
    if mode == "reference":
        return False, f"reference: forced ({ENV} or set_backend)"
    if device.type == "cuda":
        return True, f"triton: CUDA tensors ({mode})"
    if mode == "triton" and INTERPRET and dtype != torch.bfloat16:
        return True, "triton: forced, CPU tensors under TRITON_INTERPRET=1"
    if mode == "triton":
        why = "bf16 under the interpreter is wrong" if INTERPRET else "TRITON_INTERPRET=1 is not set"
        return False, f"reference: Triton forced but cannot run on {device.type} ({why})"
    return False, f"reference: {device.type} tensors (Triton kernels need a CUDA GPU)"


def use_triton(device: torch.device | str, dtype: torch.dtype | None = None) -> bool:
    """Whether an op on tensors of `dtype` on `device` runs its Triton kernel (else its reference).

    The first decision of each kind is logged with its reason."""
    runs, why = decide(device, dtype)
    key = (_mode(), why)
    if key not in _logged:
        _logged.add(key)
        log.info("kernels: %s", why)
    return runs
