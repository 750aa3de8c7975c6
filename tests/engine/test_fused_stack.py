"""The decode step's stack with residual adds fused into the norms equals the unfused stack (tiny model)."""
import types

import pytest
import torch

from conftest import assert_close
from test_decode_graph import _video  # the tiny model's prompt and inputs of a clip
from omnivideo.engine.decode.decode_graph import DecodeStep
from omnivideo.engine.decode.fused_stack import fusable, residual_norm
from omnivideo.engine.decode.slim_decode import SlimDecodeConfig
from omnivideo.engine.decode.slim_kv import SlimKV
from omnivideo.engine.engine import Engine
from omnivideo.engine.loading import LoadOptions, load_model
from omnivideo.engine.sampling import SamplingParams
from omnivideo.kernels import backend
from omnivideo.kernels.decode.kv_slimming import pack_kv


def _step_logits(engine, conv, logits, fused: bool, steps: int = 6) -> list[torch.Tensor]:
    """Logits of `steps` greedy eager decode steps over the conversation's dense KV (left unchanged)."""
    packed = [pack_kv(k, v, None) for k, v in conv.cache.iter_layers()]
    step = DecodeStep(engine, SlimKV(packed, offloaded=set(), tail_capacity=8, device=engine.device,
                                     dtype=packed[0].k.dtype), use_graph=False, fused_layers=fused)
    out = []
    for i in range(steps):
        logits = step(logits.argmax(), conv.length + i + conv.rope_delta).clone()
        out.append(logits)
    return out


@pytest.mark.parametrize("mode", ["reference", "triton"])
def test_fused_step_equals_unfused_step(tiny, clips, mode):
    """reference (what a CPU runs): transformers' own ops in the same order, bit for bit; triton (the
    add + norm kernel under the interpreter, fp32): within its rounding."""
    chat, inputs, prefix = _video(tiny, clips[0])
    engine = Engine(tiny)
    with torch.inference_mode(), backend(mode):
        conv = engine.ingest(prefix, inputs)
        logits = engine.forward_text(conv, chat.first_turn_ids("What happens?"), "text")
        fused, unfused = _step_logits(engine, conv, logits, True), _step_logits(engine, conv, logits, False)
    for i, (a, b) in enumerate(zip(fused, unfused)):
        if mode == "reference":
            assert torch.equal(a, b), f"step {i}"
        else:
            assert_close(f"step {i}", a, b, rel_rms=1e-6)
    assert [int(a.argmax()) for a in fused] == [int(b.argmax()) for b in unfused]


def test_decode_loop_gives_the_same_greedy_tokens(tiny, clips):
    chat, inputs, prefix = _video(tiny, clips[1])
    engine = Engine(tiny)
    tokens = {}
    for fused in (True, False):
        engine.slim_decode = SlimDecodeConfig(gamma_decode=1.0, fused_layers=fused)
        conv = engine.ingest(prefix, inputs)
        tokens[fused] = list(engine.generate(conv, chat.first_turn_ids("What happens in this video?"),
                                             SamplingParams(max_new_tokens=16), []))
    assert len(tokens[True]) == 16 and tokens[True] == tokens[False]


def test_residual_norm_is_add_then_the_models_norm(tiny):
    norm = tiny.model.model.language_model.layers[0].post_attention_layernorm
    gen = torch.Generator().manual_seed(0)
    h, d = torch.randn(1, 3, norm.weight.shape[0], generator=gen), torch.randn(1, 3, norm.weight.shape[0], generator=gen)
    for mode in ("reference", "triton"):
        with torch.no_grad(), backend(mode):
            r, y = residual_norm(h, d, norm)
        assert r.shape == h.shape and torch.equal(r, h + d)
        with torch.no_grad():
            assert_close(mode, y, type(norm).forward(norm, h + d), rel_rms=1e-6)


def test_unknown_layers_fall_back_to_the_models_layer_forward(tiny, clips):
    """A layer with an instance forward (someone's hook) is not fused over: the stack is decoder_stack."""
    lm = tiny.model.model.language_model
    assert fusable(lm)
    chat, inputs, prefix = _video(tiny, clips[0])
    engine = Engine(tiny)
    layer, calls = lm.layers[0], []

    def hooked(self, *args, **kwargs):
        calls.append(1)
        return type(self).forward(self, *args, **kwargs)

    with torch.inference_mode():
        conv = engine.ingest(prefix, inputs)
        logits = engine.forward_text(conv, chat.first_turn_ids("What happens?"), "text")
        expected = _step_logits(engine, conv, logits, False, steps=3)
        layer.forward = types.MethodType(hooked, layer)
        try:
            assert not fusable(lm)
            calls.clear()
            got = _step_logits(engine, conv, logits, True, steps=3)
        finally:
            del layer.forward
    assert len(calls) == 3 and all(torch.equal(a, b) for a, b in zip(got, expected))


# -- GPU ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_graph_step_fused_tokens_logits_and_fewer_kernels_bf16(data_dir, clips, quant):
    """bf16 on CUDA, graph-captured: the same greedy tokens, logits within the kernel's rounding, and two
    kernels fewer per layer (the residual adds) in one replayed step."""
    from omnivideo.bench.decode.kernel_count import kernel_counts

    loaded = load_model(LoadOptions(model="tiny", models_dir=data_dir / "models", dtype="bfloat16", quant=quant))
    chat, inputs, prefix = _video(loaded, clips[1])
    engine = Engine(loaded)
    runs = {}
    with torch.inference_mode():
        for fused in (True, False):
            conv = engine.ingest(prefix, inputs)
            logits = engine.forward_text(conv, chat.first_turn_ids("What happens?"), "text")
            packed = [pack_kv(k, v, None) for k, v in conv.cache.iter_layers()]
            step = DecodeStep(engine, SlimKV(packed, offloaded=set(), tail_capacity=64, device=engine.device,
                                             dtype=packed[0].k.dtype), use_graph=True, fused_layers=fused)
            assert step.graph is not None
            seen, tokens = [], []
            for i in range(12):
                tokens.append(int(logits.argmax()))
                logits = step(logits.argmax(), conv.length + i + conv.rope_delta).clone()
                seen.append(logits)
            pos = conv.length + 12 + conv.rope_delta
            count = kernel_counts(lambda: step(logits.argmax(), pos), calls=3)["total"]
            runs[fused] = tokens, seen, count
    assert runs[True][0] == runs[False][0]
    assert_close("first step logits", runs[True][1][0], runs[False][1][0], rel_rms=1e-2)
    layers = len(loaded.model.model.language_model.layers)
    assert runs[True][2] <= runs[False][2] - 2 * layers, (runs[True][2], runs[False][2])
