"""Prefill of a video prefix in rounds of chunks, layer by layer: each NF4 layer dequantized once per round.

The prefix is prefilled in chunks of `EngineConfig.chunk_size` tokens (activation memory stays bounded on
long videos). Run chunk by chunk through the whole decoder, every chunk's forward makes bitsandbytes
dequantize every NF4 weight again: for 4096+ rows it runs dequantize + a bf16 GEMM. On the H100 one
dequantization of all of Qwen2.5-VL-7B's decoder weights takes 16 ms, i.e. 0.15 s of a 32K prefill and
0.28 s of a 64K one (docs/benchmarks/prefill/e2e.md).

So chunks are grouped into rounds of up to `EngineConfig.prefill_round_tokens` tokens, and a round runs
layer-major: layer 0 over every chunk of the round, then layer 1, and so on. Within a layer the chunks
still go in order and each appends its K/V before the next one attends, so every chunk sees exactly the
keys it saw chunk-major: the KV cache and the outputs are the same numbers, computed in another order.
While a layer runs over a round its NF4 weights are held dequantized (`dense_weights`): one layer's
bf16 weights (0.47 GB for the 7B) plus the round's hidden states [R, hidden] are the extra memory.

Rounds trade overlap for dequantizations: a round's prefill starts once the vision tower has encoded
every frame it covers. So the ingest pipeline (omnivideo/engine/prefill/ingest_pipeline.py) extends a round only over
chunks whose frames are already decoded: decoded inputs give one round of up to `prefill_round_tokens`;
a decode-bound stream gives rounds of one or a few chunks, whose prefill overlaps the decoding of later
frames as before.

    rounds = plan_rounds(n, chunk_size=4096, round_tokens=65536)   # fixed rounds (benchmarks, decoded inputs)
    prefill_round(engine, hidden_chunks, position_chunks, cache, plan)
"""
from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from omnivideo.engine.fused.fp8_linear import fp8_weights
from omnivideo.engine.fused.instance_forward import temporary_forwards
from omnivideo.engine.stack import run_layer

_DENSE = "_omnivideo_dense_weight"   # instance attribute: the dequantized weight while a round runs


def plan_rounds(n: int, chunk_size: int, round_tokens: int) -> list[list[tuple[int, int]]]:
    """Chunks [(start, stop)] of n tokens, grouped into rounds of up to `round_tokens` tokens (at least one
    chunk each)."""
    chunks = [(s, min(n, s + chunk_size)) for s in range(0, n, chunk_size)]
    per = max(1, round_tokens // chunk_size)
    return [chunks[i:i + per] for i in range(0, len(chunks), per)]


def _dense_forward(self, x: torch.Tensor) -> torch.Tensor:
    """bitsandbytes' Linear4bit.forward for inputs of more than a few rows (dequantize, then F.linear in the
    compute dtype, output in x's dtype), with the dequantization done once up front."""
    weight = getattr(self, _DENSE)
    inp_dtype = x.dtype
    x = x.to(weight.dtype)
    bias = None if self.bias is None else self.bias.to(weight.dtype)
    return F.linear(x, weight, bias).to(inp_dtype)


def _nf4_linears(layer: torch.nn.Module) -> list:
    try:
        import bitsandbytes as bnb
    except ImportError:
        return []
    return [m for m in layer.modules()
            if isinstance(m, bnb.nn.Linear4bit) and getattr(m.weight, "quant_state", None) is not None]


@contextmanager
def dense_weights(layer: torch.nn.Module, enabled: bool = True):
    """Within the block, every NF4 `Linear4bit` of `layer` multiplies by its weight dequantized once (bf16),
    exactly what bitsandbytes computes for a multi-row input. Instance `forward`s already set (e.g. the NF4
    GEMV routing of omnivideo/engine/fused/nf4_linear.py) are put back afterwards. No-op for layers without NF4 weights."""
    modules = _nf4_linears(layer) if enabled else []
    with temporary_forwards(_DENSE) as bind:
        if modules:   # only then is bitsandbytes installed (a model without NF4 layers needs none)
            import bitsandbytes.functional as bnbf
        for m in modules:
            state = m.weight.quant_state
            bind(m, _dense_forward, bnbf.dequantize_4bit(m.weight.data, state).to(m.compute_dtype or state.dtype))
        yield len(modules)


def prefill_round(engine, hidden: list[torch.Tensor], positions: list[torch.Tensor], cache, plan,
                  after_layer: Callable[[int], None] | None = None, deepstack: list | None = None) -> None:
    """Run one round through the decoder layers, layer-major, appending every chunk's K/V to `cache`.

    Args:
        hidden: per chunk, in order, the input embeddings [1, T_c, H] (the chunks of a round follow the
            cache's current end and each other).
        positions: per chunk, its M-RoPE positions [3, 1, T_c].
        cache: the cache every layer appends to (an OmniCache).
        plan: the AttentionPlan every attention call receives (None: dense).
        after_layer: called with the layer index once a layer has run over every chunk (progress, cancel).
        deepstack: per chunk, None or (visual mask [1, T_c] bool, features [n_visual, L * H]): feature block i
            is added at the chunk's visual rows after decoder layer i (Qwen3-VL's DeepStack), as the model's
            own forward does over the whole sequence.
    The final norm is not applied: a prefix prefill needs only the cache.
    """
    lm = engine.lm
    embeddings = [lm.rotary_emb(h, p) for h, p in zip(hidden, positions)]
    deepstack = deepstack or [None] * len(hidden)
    for index, layer in enumerate(lm.layers):
        # FP8 linears even for a one-chunk round: the weight is quantized once per round either way
        with fp8_weights(layer) if engine.prefill_linears == "fp8" else dense_weights(layer, enabled=len(hidden) > 1):
            for c, h in enumerate(hidden):
                hidden[c] = run_layer(layer, h, cache, embeddings[c], plan)
                if deepstack[c] is not None:
                    mask, features = deepstack[c]
                    width = h.shape[-1]
                    if (index + 1) * width <= features.shape[1]:
                        hidden[c] = engine.family.inject(hidden[c], mask, features[:, index * width:(index + 1) * width])
        if after_layer is not None:
            after_layer(index)
