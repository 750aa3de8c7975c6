"""FP8 prefill linears in the engine (omnivideo/engine/fused/fp8_linear.py): each linear of a round's layer runs
through its FP8 weight (NF4 dequantized, or a plain Linear's own), the layer gets its forwards back, the
prefix KV stays close to the bf16 one, and the setting reaches the engine and falls back where it must."""
import pytest
import torch
from test_prefix_prefill import tiny_fp32, tiny_nf4  # noqa: F401  (module fixtures: the tiny model, fp32 / NF4)

from omnivideo.bench.prefill.e2e_timing import prefix_ids, synthetic_video
from omnivideo.bench.random_model import random_model
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.fused.fp8_linear import fp8_weights, layer_linears, resolve_prefill_linears
from omnivideo.errors import ConfigError
from omnivideo.kernels.fp8.reference import fp8_linear_reference, quantize_rows_reference

bnb = pytest.importorskip("bitsandbytes")
CPU = torch.device("cpu")


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).pow(2).mean().sqrt() / b.double().pow(2).mean().sqrt()).item()


def test_the_setting_is_validated_and_resolved():
    with pytest.raises(ConfigError, match="prefill_linears"):
        EngineConfig(prefill_linears="int8")
    assert resolve_prefill_linears("bf16", CPU, torch.float32)[0] == "bf16"
    linears, why = resolve_prefill_linears("fp8", CPU, torch.float32)
    assert linears == "fp8" and "emulated" in why   # the CPU runs the reference: the numerics are testable here


@pytest.mark.parametrize("model", ["tiny_fp32", "tiny_nf4"])
def test_fp8_weights_multiply_by_the_quantized_weight_and_restore_the_layer(model, request):
    """Plain Linear (dequantize is a no-op) and NF4 Linear4bit: inside the block a linear computes exactly the
    FP8 emulation over its (dequantized) weight; afterwards its forward and attributes are as before."""
    loaded = request.getfixturevalue(model)
    layer = loaded.model.model.language_model.layers[0]
    linears = layer_linears(layer)
    assert len(linears) == 7                                  # q, k, v, o, gate, up, down
    q, down = layer.self_attn.q_proj, layer.mlp.down_proj
    before = [m.__dict__.get("forward") for m in linears]
    x = torch.randn(1, 40, q.in_features)
    h = torch.randn(1, 40, down.in_features)
    weight = (bnb.functional.dequantize_4bit(q.weight.data, q.weight.quant_state) if model == "tiny_nf4"
              else q.weight).float()
    with torch.inference_mode():
        plain = q(x)
        with fp8_weights(layer) as count:
            assert count == 7
            got, got_down = q(x), down(h)
        after = q(x)
    expected = fp8_linear_reference(x[0], quantize_rows_reference(weight), q.bias)
    assert torch.equal(got[0], expected)
    assert got_down.shape == (1, 40, down.out_features)
    assert torch.equal(after, plain) and not torch.equal(got, plain)
    assert _rel(got, plain) < 0.05                            # FP8's few percent, not a wrong weight
    assert [m.__dict__.get("forward") for m in linears] == before
    assert not any(hasattr(m, "_omnivideo_fp8_weight") for m in linears)


def test_siblings_on_one_input_quantize_it_once(tiny_fp32):
    layer = tiny_fp32.model.model.language_model.layers[0]
    attn = layer.self_attn
    x = torch.randn(1, 24, attn.q_proj.in_features)
    with torch.inference_mode(), fp8_weights(layer):
        shared = attn.q_proj._omnivideo_fp8_weight[2]
        attn.q_proj(x)
        rows = shared.rows
        attn.k_proj(x), attn.v_proj(x)
        assert shared.rows is rows                            # k and v reused q's quantized input
        attn.k_proj(x.clone())
        assert shared.rows is not rows                        # another tensor: quantized again
    assert shared.rows is None                                # nothing kept alive after the round


def _prefix_kv(loaded, linears: str, visual: int = 208):
    engine = Engine(loaded, EngineConfig(chunk_size=64, vision_chunk_groups=2, prefill_linears=linears))
    conv = engine.ingest(prefix_ids(engine, visual), synthetic_video(loaded, visual, side=8))
    return engine, list(conv.cache.iter_layers(conv.prefix_len))


@pytest.mark.parametrize("model", ["tiny_fp32", "tiny_nf4"])
def test_fp8_prefix_kv_is_close_to_bf16(model, request):
    """The whole prefix prefill with FP8 linears: a different KV (another cache entry), a few percent off."""
    loaded = request.getfixturevalue(model)
    e16, kv16 = _prefix_kv(loaded, "bf16")
    e8, kv8 = _prefix_kv(loaded, "fp8")
    assert (e16.prefill_linears, e8.prefill_linears) == ("bf16", "fp8")
    for i, ((k16, v16), (k8, v8)) in enumerate(zip(kv16, kv8)):
        assert not torch.equal(k8, k16), i
        assert _rel(k8, k16) < 0.1 and _rel(v8, v16) < 0.1, (i, _rel(k8, k16), _rel(v8, v16))
    _, again = _prefix_kv(loaded, "fp8")
    assert all(torch.equal(a[0], b[0]) for a, b in zip(again, kv8))   # deterministic


@pytest.mark.gpu
def test_fp8_prefix_prefill_on_the_gpu():
    """The tiny model in bf16 on a GPU with FP8 tensor cores: the prefill's linears run `_scaled_mm` (the
    resolved setting says so), the KV stays within FP8's error of the bf16 one; elsewhere the bf16 fallback."""
    import dataclasses

    from omnivideo.kernels.fp8.row_quant import fp8_supported

    cuda = torch.device("cuda")
    loaded = random_model("tiny", cuda, quant="none")
    loaded = dataclasses.replace(loaded, model=loaded.model.to(torch.bfloat16), dtype=torch.bfloat16)
    e16, kv16 = _prefix_kv(loaded, "bf16", visual=400)
    e8, kv8 = _prefix_kv(loaded, "fp8", visual=400)
    if not fp8_supported(cuda):
        assert e8.prefill_linears == "bf16" and "fallback" in e8.prefill_linears_why
        return
    assert e8.prefill_linears == "fp8" and "_scaled_mm" in e8.prefill_linears_why
    for i, ((k16, v16), (k8, v8)) in enumerate(zip(kv16, kv8)):
        assert not torch.equal(k8, k16), i
        assert _rel(k8, k16) < 0.1 and _rel(v8, v16) < 0.1, (i, _rel(k8, k16), _rel(v8, v16))
