"""NF4 `Linear4bit` layers routed to our GEMV: same logits and greedy tokens as bitsandbytes, capturable."""
import pytest
import torch

from conftest import DEVICE, assert_close, capture_graph
from omnivideo.engine.engine import Engine
from omnivideo.engine.loading import LoadOptions, load_model
from omnivideo.engine.fused import nf4_linear
from omnivideo.engine.fused.nf4_linear import nf4_weight, route_nf4_linears, unroute_nf4_linears
from omnivideo.kernels import backend as kernel_backend
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.engine.decode.slim_decode import SlimDecodeConfig
from omnivideo.kernels.nf4.nf4_gemv import nf4_gemv
from omnivideo.bench.random_model import random_model
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs

pytestmark = pytest.mark.usefixtures("triton_kernels")   # the routed GEMV itself, under the interpreter on a CPU


def _video(loaded, clip):
    vis = loaded.vision_config
    inputs = to_model_inputs(sample_video(clip, SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    chat = ChatFormat(loaded.tokenizer)
    return chat, inputs, chat.prefix_ids(inputs.num_visual_tokens)


def _answer(loaded, clip, cfg: SlimDecodeConfig | None, n: int) -> tuple[list[int], torch.Tensor]:
    """Greedy tokens of one question about `clip`, and the logits of the question's last position."""
    chat, inputs, prefix = _video(loaded, clip)
    engine = Engine(loaded)
    engine.slim_decode = cfg
    turn = chat.first_turn_ids("What happens in this video?")
    with torch.inference_mode():
        conv = engine.ingest(prefix, inputs)
        probe = engine.ingest(prefix, inputs)
        logits = engine.forward_text(probe, turn[:-1], "text")  # > 4 rows: bitsandbytes either way
        logits = engine.forward_text(probe, turn[-1:], "decode")  # 1 row: the routed path
        tokens = list(engine.generate(conv, turn, SamplingParams(max_new_tokens=n), []))
    return tokens, logits.float().cpu()


def _tiny_nf4():
    """The tiny model (fp32) in NF4; on CPU with bnb's portable path (its AVX512 repack would change the
    layout of only one of the two models compared)."""
    loaded = random_model("tiny", torch.device(DEVICE), quant="nf4")
    unroute_nf4_linears(loaded.model)  # bitsandbytes' own matmuls: the baseline the tests compare with
    for module in loaded.model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return loaded


def test_routed_layer_runs_our_gemv_for_few_rows_only():
    loaded = _tiny_nf4()
    layer = loaded.model.model.language_model.layers[0].mlp.down_proj
    assert route_nf4_linears(loaded.model, enabled=True) == 14  # 2 layers x (q, k, v, o, gate, up, down)
    assert route_nf4_linears(loaded.model, enabled=True) == 14  # idempotent
    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        x = torch.randn(1, 3, layer.in_features, generator=gen).to(DEVICE)
        assert torch.equal(layer(x), nf4_gemv(x[0], nf4_weight(layer)).reshape(1, 3, -1))
        x5 = torch.randn(1, 5, layer.in_features, generator=gen).to(DEVICE)  # prefill: bitsandbytes' own forward
        assert torch.equal(layer(x5), type(layer).forward(layer, x5))
        assert_close("3 rows", layer(x), type(layer).forward(layer, x), rel_rms=1e-5)
    assert unroute_nf4_linears(loaded.model) == 14 and "forward" not in vars(layer)
    assert route_nf4_linears(loaded.model, enabled=False) == 0


def test_routing_is_on_by_default_and_the_reference_backend_sends_calls_to_bitsandbytes(monkeypatch):
    loaded = random_model("tiny", torch.device(DEVICE), quant="nf4")
    assert unroute_nf4_linears(loaded.model) == 14  # random_model routed them: on by default
    assert route_nf4_linears(loaded.model, enabled=False) == 0
    assert route_nf4_linears(loaded.model) == 14
    layer = loaded.model.model.language_model.layers[0].mlp.down_proj
    calls = []
    monkeypatch.setattr(nf4_linear, "nf4_gemv", lambda *a, **k: calls.append(1) or nf4_gemv(*a, **k))
    x = torch.randn(1, 1, layer.in_features).to(DEVICE)
    with torch.inference_mode(), kernel_backend("reference"):
        assert torch.equal(layer(x), type(layer).forward(layer, x))
    assert calls == []
    with torch.inference_mode(), kernel_backend("triton"):
        layer(x)
    assert calls == [1]


@pytest.mark.parametrize("slim", [False, True], ids=["engine-step", "decode-step"])
def test_greedy_tokens_equal_bitsandbytes(clips, slim):
    cfg = SlimDecodeConfig(gamma_decode=1.0) if slim else None
    expected, logits_bnb = _answer(_tiny_nf4(), clips[0], cfg, n=10)
    routed = _tiny_nf4()
    route_nf4_linears(routed.model, enabled=True)
    actual, logits = _answer(routed, clips[0], cfg, n=10)
    assert_close("decode logits", logits, logits_bnb, rel_rms=1e-5)
    assert actual == expected


# -- GPU ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
def test_load_model_routes_nf4_and_graph_tokens_equal_bitsandbytes(data_dir, clips, monkeypatch):
    """Routed layers inside the CUDA-graph decode step: graph replay == eager, token for token, and the
    decode logits are close to bitsandbytes' (fp32 and bf16). Token equality with bnb is checked on
    CPU; here a random tiny model's near-ties could flip an argmax between two correct roundings."""
    # float32: the routed GEMV reads fp16-rounded codes (2e-4 relative per matmul), bnb bf16-rounded
    # weights (2.4e-3): measured 1.5e-3 apart in these logits on an H100
    for dtype, tol in (("float32", 5e-3), ("bfloat16", 3e-2)):
        loaded = load_model(LoadOptions(model="tiny", models_dir=data_dir / "models", dtype=dtype, quant="nf4"))
        assert unroute_nf4_linears(loaded.model) == 14  # load_model routed them
        _, logits_bnb = _answer(loaded, clips[1], SlimDecodeConfig(cuda_graphs=False), n=2)
        route_nf4_linears(loaded.model, enabled=True)
        graph, logits = _answer(loaded, clips[1], SlimDecodeConfig(), n=16)
        eager, _ = _answer(loaded, clips[1], SlimDecodeConfig(cuda_graphs=False), n=16)
        assert graph == eager, (dtype, graph, eager)
        assert_close(f"decode logits {dtype}", logits, logits_bnb, rel_rms=tol)


@pytest.mark.gpu
def test_routed_linear4bit_is_capturable():
    import bitsandbytes as bnb

    torch.manual_seed(0)
    lin = bnb.nn.Linear4bit(3584, 512, bias=True, compute_dtype=torch.bfloat16, compress_statistics=True,
                            quant_type="nf4")
    lin.weight = bnb.nn.Params4bit(torch.randn(512, 3584) * 0.02, requires_grad=False, quant_type="nf4",
                                   compress_statistics=True)
    lin.bias = torch.nn.Parameter(torch.randn(512).to(torch.bfloat16), requires_grad=False)
    lin = lin.cuda()
    assert route_nf4_linears(lin, enabled=True) == 1
    x = torch.randn(1, 1, 3584, dtype=torch.bfloat16, device="cuda")
    with torch.inference_mode():
        graph, y = capture_graph(lambda: lin(x))
        for seed in range(3):
            x.copy_(torch.randn(1, 1, 3584, generator=torch.Generator().manual_seed(seed)).to(x))
            graph.replay()
            assert torch.equal(y, lin(x))
            assert_close("vs bitsandbytes", y, type(lin).forward(lin, x), rel_rms=1e-2)
