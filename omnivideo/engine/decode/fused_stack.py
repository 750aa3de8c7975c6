"""The decode step's decoder stack with every residual add fused into the RMSNorm that reads it.

A Qwen2 / Qwen2.5-VL / Qwen3-VL decoder layer is

    r = h;  h = attn(input_norm(h));  h = r + h           # residual add 1
    r = h;  h = mlp(post_norm(h));    h = r + h           # residual add 2

and the next layer starts with input_norm(h) (the last one is followed by the final norm). Run as the
modeling file writes it, each add is its own kernel (56 per 7B step) and each norm reads back what
the add just wrote. Here the stack carries (residual, delta) from one sub-layer to the next and runs
`add_rms_norm` (omnivideo/kernels/layers/rms_norm.py: r = x + delta rounded to the dtype, then
transformers' RMSNorm of r, one pass) at each of the 2L norms after the first: 2L - 1 kernels
where there were 4L - 1. The rounding is transformers' (the sum rounded to the dtype before the
norm reads it), so the step computes the numbers the unfused stack computes.

Only the decode step uses it (`DecodeStep(fused_layers=True)`); the prefill keeps transformers'
layer forward. The attention, MLP and norm modules are the model's own (with whatever fused
forwards they carry: rotary, NF4 routing, SiLU * up); only the layer's ten lines of glue are ours,
and only for the layer classes whose forward is that glue (`fusable`); any other model takes
`decoder_stack`.

    hidden = fused_decoder_stack(lm, hidden, position_ids, lambda i: slim, plan)   # == decoder_stack(...)
"""
import torch

from omnivideo.engine.stack import CACHE_KWARG, decoder_stack
from omnivideo.kernels import use_triton
from omnivideo.kernels.layers.rms_norm_reference import add_rms_norm_reference

# decoder layers whose forward is exactly the two residual blocks above (transformers 5.x; read from
# modeling_qwen2_5_vl.py / modeling_qwen3_vl.py / modeling_qwen2.py)
LAYER_CLASSES = ("Qwen2_5_VLDecoderLayer", "Qwen3VLTextDecoderLayer", "Qwen2DecoderLayer")
_PARTS = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")


def fusable(lm) -> bool:
    """Whether every decoder layer of `lm` is one whose forward `fused_decoder_stack` reproduces."""
    layers = getattr(lm, "layers", None)
    return bool(layers) and hasattr(lm, "norm") and all(
        type(layer).__name__ in LAYER_CLASSES and all(hasattr(layer, p) for p in _PARTS)
        and "forward" not in layer.__dict__ for layer in layers)  # an instance forward is someone's hook


def residual_norm(residual: torch.Tensor, delta: torch.Tensor, norm) -> tuple[torch.Tensor, torch.Tensor]:
    """(residual + delta, norm(residual + delta)) for [..., C] tensors and an RMSNorm module, in one
    kernel where the kernel switch picks Triton (else the reference: transformers' ops, bit for bit)."""
    shape = residual.shape
    x, d = residual.reshape(-1, shape[-1]), delta.reshape(-1, shape[-1])
    weight, eps = norm.weight, norm.variance_epsilon
    if use_triton(x.device, x.dtype) and d.dtype == x.dtype == weight.dtype:
        from omnivideo.kernels.layers.rms_norm import add_rms_norm  # imported late: Triton is optional on a CPU

        r, y = add_rms_norm(x, d, weight, eps)
    else:
        r, y = add_rms_norm_reference(x, d, weight, eps)
    return r.view(shape), y.view(shape)


def fused_decoder_stack(lm, hidden: torch.Tensor, position_ids: torch.Tensor, cache_for, plan) -> torch.Tensor:
    """`decoder_stack` (same arguments, same [1, T, H] result after the final norm) with the residual
    adds fused into the norms; falls back to `decoder_stack` for layers it does not know."""
    if not fusable(lm):
        return decoder_stack(lm, hidden, position_ids, cache_for, plan)
    position_embeddings = lm.rotary_emb(hidden, position_ids)
    layers = list(lm.layers)
    residual, x = hidden, layers[0].input_layernorm(hidden)
    for i, layer in enumerate(layers):
        attn = layer.self_attn(hidden_states=x, attention_mask=None, position_ids=None, use_cache=True,
                               position_embeddings=position_embeddings, omni_plan=plan,
                               **{CACHE_KWARG: cache_for(i)})[0]
        residual, x = residual_norm(residual, attn, layer.post_attention_layernorm)
        following = layers[i + 1].input_layernorm if i + 1 < len(layers) else lm.norm
        residual, x = residual_norm(residual, layer.mlp(x), following)
    return x
