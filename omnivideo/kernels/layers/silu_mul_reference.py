"""Pure-PyTorch definition of the gated MLP's activation on a fused gate/up projection: the spec of `omnivideo.kernels.layers.silu_mul`.

transformers' `Qwen2_5_VLMLP` computes `act_fn(gate_proj(x)) * up_proj(x)` in the activations'
dtype: SiLU of the gate (fp32 inside, rounded to the dtype), then the product (rounded again). With
one GEMM for both projections the gate is the first half of each row and up the second:

    out = silu_mul_reference(gate_up)     # gate_up [N, 2I] -> [N, I]
"""
import torch
import torch.nn.functional as F


def silu_mul_reference(gate_up: torch.Tensor) -> torch.Tensor:
    """silu(gate_up[:, :I]) * gate_up[:, I:], each step rounded to the input dtype as transformers does.

    Args:
        gate_up: [N, 2I] fp16 / bf16 / fp32.
    Returns:
        [N, I] in gate_up's dtype.
    """
    half = gate_up.shape[-1] // 2
    assert gate_up.shape[-1] == 2 * half, f"gate_up's last dim must be even, got {tuple(gate_up.shape)}"
    gate, up = gate_up[..., :half], gate_up[..., half:]
    act = F.silu(gate.float()).to(gate_up.dtype)
    return (act.float() * up.float()).to(gate_up.dtype)
