"""FP8 prefill linears: while a prefill round runs a decoder layer, its linears multiply on FP8 tensor cores.

`EngineConfig.prefill_linears = "fp8"` makes the layer-major prefill rounds (omnivideo/engine/prefill/
prefix_prefill.py) enter `fp8_weights(layer)` instead of `dense_weights(layer)`: every linear of the layer
(bitsandbytes NF4 `Linear4bit` or plain bf16 `nn.Linear`; q/k/v/o and gate/up/down) gets its weight
dequantized once for the round (a no-op for a plain Linear) and quantized to FP8 e4m3 with one scale per
output channel; each forward then quantizes its input per token (dynamic scales, one Triton kernel) and
multiplies with `torch._scaled_mm` (omnivideo/kernels/fp8/). Siblings called on the same input object
(q|k|v, gate|up) quantize it once. Numerics: omnivideo/kernels/fp8/reference.py; measured cost and error:
docs/engine.md ("FP8 prefill linears").

Only the video prefix's prefill takes this path: a question's few tokens and decode keep their bf16 / NF4
GEMV paths. Where the run cannot use FP8 tensor cores, `resolve_prefill_linears` falls back to bf16 (a
GPU below compute capability 8.9, a model not in bf16 on the GPU); on a CPU the FP8 emulation runs (the
reference: slower than bf16, for the numerics and the tests). The linears that ran go into the cache key.

    linears, why = resolve_prefill_linears("fp8", device, dtype)      # ("fp8", "FP8 tensor cores ...")
    with fp8_weights(layer) as n:                                      # n linears in FP8 until the block ends
        hidden = layer(hidden, ...)
"""
from contextlib import contextmanager

import torch
from torch import nn

from omnivideo.engine.fused.instance_forward import temporary_forwards
from omnivideo.kernels.fp8.fp8_matmul import fp8_matmul, scaled_mm_fits
from omnivideo.kernels.fp8.row_quant import MIN_CAPABILITY, fp8_supported, quantize_rows

PREFILL_LINEARS = ("bf16", "fp8")
_FP8 = "_omnivideo_fp8_weight"   # instance attribute: the layer's FP8 weight while a round runs


def resolve_prefill_linears(requested: str, device: torch.device, dtype: torch.dtype) -> tuple[str, str]:
    """(the linears a prefix prefill runs, "bf16" or "fp8"; why) for the requested setting on this device."""
    if requested != "fp8":
        return "bf16", "bf16 linears (the default)"
    device = torch.device(device)
    if device.type != "cuda":
        return "fp8", f"FP8 emulated on the {device.type} (the reference numerics; slower than bf16)"
    if not fp8_supported(device):
        cc = ".".join(map(str, torch.cuda.get_device_capability(device)))
        return "bf16", (f"bf16 fallback: {torch.cuda.get_device_name(device)} has no FP8 tensor cores "
                        f"(compute capability {cc} < {'.'.join(map(str, MIN_CAPABILITY))})")
    if dtype != torch.bfloat16:
        return "bf16", f"bf16 fallback: FP8 linears need a bf16 model on the GPU, this one is {dtype}"
    return "fp8", "FP8 tensor cores (torch._scaled_mm, row-wise scales)"


def _nf4(module) -> bool:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return False
    return isinstance(module, bnb.nn.Linear4bit) and getattr(module.weight, "quant_state", None) is not None


def layer_linears(layer: nn.Module) -> list[nn.Module]:
    """The linears of `layer` the FP8 path takes: NF4 Linear4bit or exact nn.Linear, N and K multiples of 16."""
    out = []
    for m in layer.modules():
        if not (_nf4(m) or type(m) is nn.Linear):
            continue
        n, k = m.weight.quant_state.shape if _nf4(m) else m.weight.shape
        if scaled_mm_fits(n, k):
            out.append(m)
    return out


def _weight(module) -> tuple[torch.Tensor, torch.dtype]:
    """(the module's weight [N, K] in its compute dtype, that dtype): dequantized for NF4, as is for nn.Linear."""
    if _nf4(module):
        import bitsandbytes.functional as bnbf

        state = module.weight.quant_state
        dtype = module.compute_dtype or state.dtype
        return bnbf.dequantize_4bit(module.weight.data, state).to(dtype), dtype
    return module.weight.detach(), module.weight.dtype


class _SharedInput:
    """The last input's FP8 rows, reused by a sibling called on the very same tensor object (q|k|v, gate|up)."""

    def __init__(self):
        self.x, self.rows = None, None

    def rows_of(self, x: torch.Tensor, x2: torch.Tensor):
        if self.x is not x:
            self.x, self.rows = x, quantize_rows(x2)
        return self.rows


def _fp8_forward(self, x: torch.Tensor) -> torch.Tensor:
    """F.linear semantics (output in x's dtype) with the round's FP8 weight and x quantized per token."""
    weight, dtype, shared = getattr(self, _FP8)
    n, k = weight.shape
    x2 = x.reshape(-1, k).to(dtype).contiguous()
    y = fp8_matmul(shared.rows_of(x, x2), weight, self.bias, dtype)
    return y.reshape(*x.shape[:-1], n).to(x.dtype)


@contextmanager
def fp8_weights(layer: nn.Module):
    """Within the block, every FP8-capable linear of `layer` runs through its FP8 weight (made on entry,
    dropped on exit); instance `forward`s already set (the NF4 GEMV routing) are put back afterwards.
    Yields how many linears are in FP8. Extra memory: the layer's FP8 weights (0.23 GB for the 7B), plus one
    dequantized matrix at a time while they are made."""
    modules = layer_linears(layer)
    shared = _SharedInput()
    try:
        with temporary_forwards(_FP8) as bind:
            for m in modules:
                weight, dtype = _weight(m)
                rows = quantize_rows(weight.contiguous())
                del weight   # one dequantized matrix at a time
                bind(m, _fp8_forward, (rows, dtype, shared))
            yield len(modules)
    finally:
        shared.x = shared.rows = None
