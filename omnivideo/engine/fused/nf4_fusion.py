"""Sibling NF4 projections in one GEMV launch at decode time: q|k|v of each attention, gate|up of each MLP.

Why: at batch 1 a projection is a read of its NF4 bytes, and the small ones are dominated by the fixed
cost of a launch and its ramp (a 512 x 3584 K/V projection is 0.9 MB: ~5 µs in a CUDA graph where its
bytes take 0.4 µs). The modeling code calls `q_proj(h)`, `k_proj(h)`, `v_proj(h)` (and `gate_proj(h)`,
`up_proj(h)`) on the same tensor `h`, so one GEMV over the rows of all siblings computes them together.

How, without touching the modeling files:
- `fuse_nf4_siblings(model)` copies each group's packed bytes, uint8 absmax and absmax2 back to back into
  one buffer and makes every member's own tensors *views* of it: no extra memory, and bitsandbytes'
  forward (prefill) reads exactly the values it read before. The fused weight keeps one offset per
  absmax2 block (`NF4Weight.offset_per_block`), since each member was quantized with its own mean.
- at run time (`NF4Group.forward`, called by the routed forward of `omnivideo.engine.fused.nf4_linear` for inputs of
  <= 4 rows), the first member runs the fused GEMV and keeps (input, output); a later member called
  with that very input object returns its slice. Any other call computes the member alone, so a model
  whose code calls its projections differently is slower, never wrong.
Fusion requires members with the same input size, blocksize, code and absmax map, bias on all or
none, and block counts that are whole absmax2 blocks (true for every 7B projection); otherwise the
group is left alone.

    groups = fuse_nf4_siblings(model)    # number of groups fused (idempotent)
"""
import logging
from dataclasses import dataclass, field

import torch

from omnivideo.kernels.nf4.nf4_gemv import nf4_gemv
from omnivideo.kernels.nf4.reference import NF4Weight

log = logging.getLogger(__name__)

SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
GROUP_ATTR = "_omnivideo_nf4_group"


@dataclass(eq=False)
class NF4Group:
    """Members fused into one weight. bounds[i] = (first, last + 1) output column of member i."""
    members: list
    weight: NF4Weight
    bias: torch.Tensor | None
    bounds: list[tuple[int, int]]
    _last: tuple | None = field(default=None, repr=False)  # (input tensor, fused output [M, N_total])

    def forward(self, module, x_in: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """[M, N_i] output of `module` for x ([M, K], compute dtype); x_in is the caller's own tensor,
        the key under which the first member leaves the fused output for the others."""
        i = next(j for j, m in enumerate(self.members) if m is module)
        lo, hi = self.bounds[i]
        if i == 0:
            y = nf4_gemv(x, self.weight, None if self.bias is None else self.bias.to(x.dtype))
            self._last = (x_in, y)
        elif self._last is not None and self._last[0] is x_in:
            y = self._last[1]
            if i == len(self.members) - 1:
                self._last = None  # the group is done with this input: do not keep it alive
        else:
            return None
        return y[:, lo:hi] if y.shape[0] == 1 else y[:, lo:hi].contiguous()


def _compatible(weights: list[NF4Weight], modules) -> bool:
    first = weights[0]
    if not all(w.nested for w in weights) or len({w.shape[1] for w in weights}) != 1:
        return False
    if len({(w.blocksize, w.absmax_blocksize, w.packed.device) for w in weights}) != 1:
        return False
    if len({m.bias is None for m in modules}) != 1 or len({m.compute_dtype for m in modules}) != 1:
        return False
    for w in weights:
        blocks = w.absmax.numel()
        if (w.shape[0] * w.shape[1]) % w.blocksize or blocks % w.absmax_blocksize:
            return False
        if not (torch.equal(w.code, first.code) and torch.equal(w.absmax_code, first.absmax_code)):
            return False
    return True


def _views(parts: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One buffer holding `parts` back to back (flattened) and a view of it shaped like each part."""
    flat = torch.cat([p.reshape(-1) for p in parts])
    views, start = [], 0
    for p in parts:
        views.append(flat[start:start + p.numel()].view(p.shape))
        start += p.numel()
    return flat, views


def fuse_group(modules, weights: list[NF4Weight]) -> NF4Group:
    """Store `modules`' NF4 tensors back to back; returns the group (the modules then hold views)."""
    packed, packed_views = _views([m.weight.data for m in modules])
    absmax, absmax_views = _views([m.weight.quant_state.absmax for m in modules])
    scale, scale_views = _views([m.weight.quant_state.state2.absmax for m in modules])
    offsets = torch.cat([w.offset.reshape(1).float().expand(w.absmax_scale.numel()) for w in weights])
    for m, p, a, s in zip(modules, packed_views, absmax_views, scale_views):
        m.weight.data = p
        m.weight.quant_state.absmax = a
        m.weight.quant_state.state2.absmax = s
    bias = None
    if modules[0].bias is not None:
        bias, bias_views = _views([m.bias.data for m in modules])
        for m, b in zip(modules, bias_views):
            m.bias.data = b
    first = weights[0]
    n_total = sum(w.shape[0] for w in weights)
    fused = NF4Weight(packed, absmax, (n_total, first.shape[1]), first.code, first.blocksize,
                      absmax_code=first.absmax_code, absmax_scale=scale, offset=offsets,
                      absmax_blocksize=first.absmax_blocksize)
    bounds, start = [], 0
    for w in weights:
        bounds.append((start, start + w.shape[0]))
        start += w.shape[0]
    return NF4Group(list(modules), fused, bias, bounds)


def fuse_nf4_siblings(model: torch.nn.Module, nf4_weight) -> int:
    """Fuse every q|k|v and gate|up group of NF4 layers under `model` (idempotent); returns how many
    groups are fused. nf4_weight: module -> NF4Weight | None (omnivideo.engine.fused.nf4_linear's reader)."""
    count = 0
    for parent in model.modules():
        for names in SIBLINGS:
            modules = [getattr(parent, n, None) for n in names]
            if any(m is None for m in modules):
                continue
            if all(getattr(m, GROUP_ATTR, None) is not None for m in modules):
                count += 1
                continue
            weights = [nf4_weight(m) for m in modules]
            if any(w is None for w in weights) or not _compatible(weights, modules):
                continue
            with torch.no_grad():
                group = fuse_group(modules, weights)
            for m in modules:
                setattr(m, GROUP_ATTR, group)
            count += 1
    log.info("NF4 GEMV fuses %d sibling groups (q|k|v, gate|up)", count)
    return count


def group_of(module) -> NF4Group | None:
    return getattr(module, GROUP_ATTR, None)


def unfuse_nf4_siblings(model: torch.nn.Module) -> int:
    """Drop the groups (the members keep their views, which hold the same values); returns how many."""
    groups = set()
    for module in model.modules():
        group = getattr(module, GROUP_ATTR, None)
        if group is not None:
            groups.add(id(group))
            delattr(module, GROUP_ATTR)
    return len(groups)
