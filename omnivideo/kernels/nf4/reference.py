"""NF4 weights in bitsandbytes' storage layout, and the matmul over them: the spec of `omnivideo.kernels.nf4.nf4_gemv`.

The layout (bitsandbytes 0.50 `quantize_4bit(W, blocksize, compress_statistics, quant_type="nf4")`,
read from its `backends/default/ops.py` and `functional.py`):
- W [N, K] (out_features, in_features) is flattened row-major; element i = n * K + k.
- packed: uint8 [(N*K + 1) // 2] (bnb keeps it as [.., 1]); byte j holds element 2j in its HIGH
  nibble and element 2j + 1 in its LOW nibble. A nibble is an index into `code`, the 16 NF4 values
  (fp32, ascending, code[7] == 0, code[15] == 1).
- absmax: one scale per `blocksize` consecutive flat elements; W[i] = code[nibble(i)] * absmax[i // blocksize].
- double quantization (compress_statistics=True): absmax is itself stored as uint8 indices into a
  256-entry dynamic map `absmax_code`, scaled per 256 consecutive absmax entries by float32
  `absmax_scale` and shifted by the scalar `offset` (the mean bnb subtracted before quantizing):
  absmax[b] = absmax_code[q[b]] * absmax_scale[b // absmax_blocksize] + offset.
  Several weights stored back to back (`omnivideo.engine.fused.nf4_fusion`: q|k|v in one launch) keep their own
  offsets: `offset` may then hold one value per `absmax_scale` entry, offset[b // absmax_blocksize].
  Without it, absmax is float32 [N*K / blocksize] and absmax_code / absmax_scale / offset are None.

    w = NF4Weight(packed, absmax, shape=(N, K), code=code, blocksize=64,
                  absmax_code=code2, absmax_scale=absmax2, offset=offset)
    y = nf4_matmul_reference(x, w, bias)       # x [M, K] -> y [M, N] in x's dtype
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class NF4Weight:
    """Plain tensors of one NF4 weight (no bitsandbytes objects), all on one device.

    packed        uint8 [(N*K + 1) // 2] (any shape with that many elements, contiguous)
    absmax        uint8 [ceil(N*K / blocksize)] when double-quantized, else float32 of that length
    shape         (N, K)
    code          float32 [16], the NF4 values
    blocksize     elements per absmax entry (bnb: 64)
    absmax_code   float32 [256] dynamic map of the absmax indices (double quantization only)
    absmax_scale  float32 [ceil(len(absmax) / absmax_blocksize)]
    offset        float32 scalar tensor (0-d or [1]), or one per absmax_scale entry
    """
    packed: torch.Tensor
    absmax: torch.Tensor
    shape: tuple[int, int]
    code: torch.Tensor
    blocksize: int = 64
    absmax_code: torch.Tensor | None = None
    absmax_scale: torch.Tensor | None = None
    offset: torch.Tensor | None = None
    absmax_blocksize: int = 256

    def __post_init__(self):
        n, k = self.shape
        if n <= 0 or k <= 0:
            raise ValueError(f"shape must be positive, got {self.shape}")
        if self.packed.dtype != torch.uint8 or self.packed.numel() != (n * k + 1) // 2:
            raise ValueError(f"packed must be uint8 with {(n * k + 1) // 2} bytes, got {self.packed.dtype} "
                             f"{self.packed.numel()}")
        if self.code.numel() != 16:
            raise ValueError(f"code must have 16 NF4 values, got {self.code.numel()}")
        blocks = -(-n * k // self.blocksize)
        if self.absmax.numel() != blocks:
            raise ValueError(f"absmax must have {blocks} entries for blocksize {self.blocksize}, got "
                             f"{self.absmax.numel()}")
        nested = (self.absmax_code, self.absmax_scale, self.offset)
        if self.nested:
            if any(t is None for t in nested) or self.absmax_code.numel() != 256:
                raise ValueError("a uint8 absmax needs absmax_code [256], absmax_scale and offset")
            if self.absmax_scale.numel() != -(-blocks // self.absmax_blocksize):
                raise ValueError(f"absmax_scale must have ceil({blocks} / {self.absmax_blocksize}) entries")
            if self.offset.numel() not in (1, self.absmax_scale.numel()):
                raise ValueError("offset must be a scalar or have one value per absmax_scale entry")
        elif self.absmax.dtype != torch.float32 or any(t is not None for t in nested):
            raise ValueError("absmax must be float32 (or uint8 with absmax_code/absmax_scale/offset)")

    @property
    def nested(self) -> bool:
        """Double quantization: absmax holds uint8 indices into absmax_code."""
        return self.absmax.dtype == torch.uint8

    @property
    def offset_per_block(self) -> bool:
        """The offset has one value per absmax_scale entry (weights stored back to back)."""
        return self.nested and self.offset.numel() > 1


def absmax_reference(w: NF4Weight) -> torch.Tensor:
    """float32 [ceil(N*K / blocksize)]: the per-block scales, decoded from the nested form if needed."""
    if not w.nested:
        return w.absmax.float()
    q = w.absmax.reshape(-1).long()
    group = torch.arange(q.numel(), device=q.device) // w.absmax_blocksize
    offset = w.offset.float().reshape(-1)
    offset = offset[group] if w.offset_per_block else offset.reshape(())
    return w.absmax_code.float()[q] * w.absmax_scale.float().reshape(-1)[group] + offset


def dequantize_nf4_reference(w: NF4Weight) -> torch.Tensor:
    """float32 [N, K]: W[i] = code[nibble(i)] * absmax[i // blocksize], high nibble first."""
    n, k = w.shape
    packed = w.packed.reshape(-1).long()
    nibbles = torch.stack([packed >> 4, packed & 0xF], dim=1).reshape(-1)[: n * k]  # element 2j, then 2j+1
    block = torch.arange(n * k, device=packed.device) // w.blocksize
    return (w.code.float()[nibbles] * absmax_reference(w)[block]).reshape(n, k)


def nf4_matmul_reference(x: torch.Tensor, w: NF4Weight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ dequant(W)^T (+ bias), computed in fp32.

    Args:
        x: [M, K] float32 / float16 / bfloat16; bias: [N] or None.
    Returns:
        [M, N] in x's dtype.
    """
    y = x.float() @ dequantize_nf4_reference(w).t()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)
