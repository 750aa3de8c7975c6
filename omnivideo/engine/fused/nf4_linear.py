"""Route bitsandbytes NF4 `Linear4bit` layers to our Triton GEMV (`omnivideo.kernels.nf4.nf4_gemv`) at decode time.

A decode step multiplies one token by every weight: it is a read of the NF4 weights, and
bitsandbytes' batch-1 kernel reads them at about a third of the memory bandwidth (docs/decode_engine.md).
`route_nf4_linears(model)` replaces the `forward` of each eligible `Linear4bit` *instance* (the
modeling files and the class are untouched): inputs with at most 4 rows (decode, short text steps)
go to `nf4_gemv` over the module's own packed weight and quantization state (q|k|v and gate|up in one
launch each, `omnivideo.engine.fused.nf4_fusion`); anything else (prefill,
inputs that need gradients, a layout we do not read) calls bitsandbytes' forward unchanged. The routed forward
allocates only through torch and never syncs, so the decode step's CUDA graph captures it.

`load_model` calls `route_nf4_linears` for every NF4 model; each call then follows the kernel switch
(`omnivideo.kernels`: OMNIVIDEO_KERNELS=reference sends every matmul to bitsandbytes). On an
H100 the kernel (codes looked up in registers, `omnivideo/kernels/nf4/nf4_lut.py`) is faster than bitsandbytes'
batch-1 kernel on every shape of the 7B at M = 1 and 4: 1.23 vs 1.00 TB/s on the MLP matrices, 1.29x on
the 512-row projections (docs/decode_engine.md). `unroute_nf4_linears(model)` undoes it.

    n = route_nf4_linears(model)         # number of layers routed
    unroute_nf4_linears(model)           # back to bitsandbytes everywhere
"""
import logging
import types

import torch

from omnivideo.engine.fused.nf4_fusion import fuse_nf4_siblings, group_of, unfuse_nf4_siblings
from omnivideo.kernels import use_triton
from omnivideo.kernels.nf4.nf4_gemv import MAX_ROWS, nf4_gemv
from omnivideo.kernels.nf4.reference import NF4Weight

log = logging.getLogger(__name__)

_ROUTED = "_omnivideo_nf4_gemv"  # instance attribute marking a routed module


def nf4_weight(module) -> NF4Weight | None:
    """The module's NF4 weight as plain tensors, or None when our kernel cannot read it."""
    state = getattr(module.weight, "quant_state", None)
    if state is None or state.quant_type != "nf4" or len(state.shape) != 2:
        return None
    if getattr(state, "packing_format_for_cpu", False):  # bnb's AVX512 repack: another layout
        return None
    n, k = state.shape
    if k % state.blocksize or module.weight.dtype != torch.uint8:
        return None
    nested = {}
    if state.nested:
        nested = dict(absmax_code=state.state2.code, absmax_scale=state.state2.absmax,
                      offset=state.offset.float(), absmax_blocksize=state.state2.blocksize)
    return NF4Weight(module.weight.data, state.absmax, (n, k), state.code, state.blocksize, **nested)


def _takes(module, x: torch.Tensor) -> bool:
    """Whether the routed forward handles x: few rows, inference, a device the kernel runs on."""
    if x.numel() == 0 or x.numel() // x.shape[-1] > MAX_ROWS or x.device != module.weight.device:
        return False
    # module.training is not checked: a linear layer computes the same in both modes (and modules
    # swapped in after model.eval(), as the bench's quantize_nf4 does, are left in training mode)
    if torch.is_grad_enabled() and (x.requires_grad or module.weight.requires_grad):
        return False
    # the kernel switch: CUDA, or CPU tensors under the forced interpreter (tests; no bf16 there)
    return use_triton(x.device, x.dtype) and use_triton(x.device, module.compute_dtype)


def _routed_forward(self, x: torch.Tensor) -> torch.Tensor:
    """bitsandbytes' Linear4bit.forward semantics (compute dtype, bias cast, output in x's dtype)."""
    weight = nf4_weight(self) if _takes(self, x) else None
    if weight is None:
        return type(self).forward(self, x)
    if not self.compute_type_is_set:
        self.set_compute_type(x)
        self.compute_type_is_set = True
    x_in, inp_dtype = x, x.dtype
    if self.compute_dtype is not None:
        x = x.to(self.compute_dtype)
    n, k = weight.shape
    x2 = x.reshape(-1, k).contiguous()
    group = group_of(self)  # q|k|v or gate|up in one launch (omnivideo.engine.fused.nf4_fusion)
    y = group.forward(self, x_in, x2) if group is not None else None
    if y is None:
        bias = None if self.bias is None else self.bias.to(x.dtype)  # same dtype: no copy
        y = nf4_gemv(x2, weight, bias)
    return y.reshape(*x.shape[:-1], n).to(inp_dtype)


def route_nf4_linears(model: torch.nn.Module, enabled: bool = True) -> int:
    """Route every NF4 `Linear4bit` under `model` (idempotent); returns how many are routed.

    enabled: False routes nothing (the benchmarks' bitsandbytes-only variant).
    """
    if not enabled:
        log.info("NF4 GEMV not routed: bitsandbytes runs every NF4 matmul")
        return 0
    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    count = 0
    for module in model.modules():
        if not isinstance(module, bnb.nn.Linear4bit) or nf4_weight(module) is None:
            continue
        if not getattr(module, _ROUTED, False):
            module.forward = types.MethodType(_routed_forward, module)
            setattr(module, _ROUTED, True)
            # bnb repacks CPU weights into an AVX512 layout at their first forward; keep the standard
            # layout, which our kernel reads (this matters for the CPU tests only)
            module.support_avx512bf16_for_cpu = False
        count += 1
    log.info("NF4 GEMV routes %d Linear4bit layers (inputs of <= %d rows)", count, MAX_ROWS)
    fuse_nf4_siblings(model, nf4_weight)
    return count


def unroute_nf4_linears(model: torch.nn.Module) -> int:
    """Give every routed layer back its class forward; returns how many were routed."""
    unfuse_nf4_siblings(model)
    count = 0
    for module in model.modules():
        if getattr(module, _ROUTED, False):
            del module.forward
            delattr(module, _ROUTED)
            count += 1
    return count
