"""The static decode step (eager on CPU, CUDA graph on a GPU), host staging, and graph capture with NF4."""
import pytest
import torch

from conftest import assert_close, capture_graph
from omnivideo.engine.engine import Engine
from omnivideo.engine.decode.decode_graph import DecodeStep
from omnivideo.engine.prefill.layer_stager import LayerStager
from omnivideo.engine.loading import LoadOptions, load_model
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.prefill.question_prefill import to_host
from omnivideo.engine.sampling import SamplingParams
from omnivideo.engine.decode.slim_decode import SlimDecodeConfig
from omnivideo.engine.decode.slim_kv import SlimKV
from omnivideo.kernels.decode.kv_slimming import pack_kv
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs


def _video(loaded, clip):
    vis = loaded.vision_config
    inputs = to_model_inputs(sample_video(clip, SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    chat = ChatFormat(loaded.tokenizer)
    return chat, inputs, chat.prefix_ids(inputs.num_visual_tokens)


def test_decode_step_equals_the_models_own_forward(tiny, clips):
    chat, inputs, prefix = _video(tiny, clips[0])
    engine = Engine(tiny)
    turn = chat.first_turn_ids("What happens?")
    with torch.inference_mode():
        conv, ref = engine.ingest(prefix, inputs), engine.ingest(prefix, inputs)
        logits = engine.forward_text(conv, turn, "text")
        engine.forward_text(ref, turn, "text")
        packed = [pack_kv(k, v, None) for k, v in conv.cache.iter_layers()]  # every token: dense KV
        step = DecodeStep(engine, SlimKV(packed, offloaded=set(), tail_capacity=8, device=engine.device,
                                         dtype=packed[0].k.dtype), use_graph=False)
        for i in range(6):
            token = logits.argmax()
            logits = step(token, conv.length + i + conv.rope_delta)
            expected = engine.forward_text(ref, [int(token)], "decode")
            assert_close(f"step {i}", logits, expected, rel_rms=1e-5)
    assert int(step.slim.tails[0].length) == 6


def test_layer_stager_copies_each_item_into_the_buffers_in_order():
    # first n rows of every head of a [2, 10, 3] buffer: non-contiguous, as the host KV cache hands them out
    sources = [(torch.randn(2, 10, 3)[:, :n], torch.full((n, 3), -float(i))) for i, n in enumerate([4, 1, 6])]
    for cyclic in (False, True):
        stager = LayerStager(sources, [(2, 7, 3), (7, 3)], dtype=torch.float32, device=torch.device("cpu"),
                             cyclic=cyclic)
        for _ in range(2 if cyclic else 1):
            for i, (a, b) in enumerate(sources):
                buf_a, buf_b = stager.get(i)
                assert torch.equal(buf_a[:, :a.shape[1]], a) and torch.equal(buf_b[:b.shape[0]], b)


# -- GPU ------------------------------------------------------------------------------------------------
def _tokens(engine, chat, prefix, inputs, cfg, n=24, host=False):
    engine.slim_decode = cfg
    conv = engine.ingest(prefix, inputs)
    if host:
        conv = to_host(engine, conv)
    tokens = list(engine.generate(conv, chat.first_turn_ids("What happens in this video?"),
                                  SamplingParams(max_new_tokens=n), []))
    return tokens, conv.stats["slim"]


@pytest.mark.gpu
@pytest.mark.parametrize("quant", ["none", "nf4"])
def test_graph_replay_gives_the_same_tokens_as_eager(data_dir, clips, quant):
    loaded = load_model(LoadOptions(model="tiny", models_dir=data_dir / "models", dtype="bfloat16", quant=quant))
    chat, inputs, prefix = _video(loaded, clips[1])
    engine = Engine(loaded)
    for gamma in (1.0, 0.5):
        eager_cfg = SlimDecodeConfig(gamma_decode=gamma, min_tokens=4, cuda_graphs=False)
        eager, stats_e = _tokens(engine, chat, prefix, inputs, eager_cfg)
        graph, stats_g = _tokens(engine, chat, prefix, inputs, SlimDecodeConfig(gamma_decode=gamma, min_tokens=4))
        assert stats_g["graph"] and not stats_e["graph"]
        assert graph == eager, (quant, gamma)


@pytest.mark.gpu
def test_streamed_and_offloaded_decoding_match_on_the_gpu(tiny, clips):
    chat, inputs, prefix = _video(tiny, clips[0])
    engine = Engine(tiny)
    cfg = SlimDecodeConfig(gamma_decode=0.5, min_tokens=4)
    expected, stats = _tokens(engine, chat, prefix, inputs, cfg)
    streamed, _ = _tokens(engine, chat, prefix, inputs, cfg, host=True)
    offload = SlimDecodeConfig(gamma_decode=0.5, min_tokens=4, gpu_kv_budget_gb=0.0)
    staged, stats_o = _tokens(engine, chat, prefix, inputs, offload, host=True)
    assert streamed == expected and staged == expected
    assert stats_o["offloaded_layers"] == [0, 1] and not stats_o["graph"]


@pytest.mark.gpu
def test_bitsandbytes_nf4_linear_is_capturable():
    import bitsandbytes as bnb

    torch.manual_seed(0)
    weight = torch.randn(512, 3584) * 0.02
    lin = bnb.nn.Linear4bit(3584, 512, bias=True, compute_dtype=torch.bfloat16, compress_statistics=True,
                            quant_type="nf4")
    lin.weight = bnb.nn.Params4bit(weight, requires_grad=False, quant_type="nf4", compress_statistics=True)
    lin.bias = torch.nn.Parameter(torch.randn(512).to(torch.bfloat16), requires_grad=False)
    lin = lin.cuda()
    x = torch.randn(1, 1, 3584, dtype=torch.bfloat16, device="cuda")
    with torch.inference_mode():
        graph, y = capture_graph(lambda: lin(x))
        for seed in range(3):
            x.copy_(torch.randn(1, 1, 3584, generator=torch.Generator().manual_seed(seed)).to(x))
            graph.replay()
            assert torch.equal(y, lin(x))
