"""Mechanism 3 in the engine (slimmed decode), on the tiny model and real video files.

The decode kernel runs under the Triton interpreter here (conftest sets TRITON_INTERPRET on CPU).
Random weights give nearly flat attention, so gamma_decode < 1 keeps about gamma of the visual
tokens and the answers drift from dense ones; what must hold exactly is (a) gamma_decode = 1 equals
dense decoding, (b) a slimmed decode equals dense decoding restricted to the kept keys.
"""
import pytest
import torch

from conftest import assert_close
from omnivideo.engine.attention import AttentionPlan
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.prefill.question_prefill import to_host
from omnivideo.engine.sampling import SamplingParams
from omnivideo.engine.decode.slim_decode import SlimDecodeConfig, SlimSelector, observed_attention
from omnivideo.kernels.decode.kv_slimming import select_slim_tokens
from omnivideo.errors import ConfigError
from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs

pytestmark = pytest.mark.usefixtures("triton_kernels")   # the decode kernel and tail append, under the interpreter on a CPU

SLIM = SlimDecodeConfig(gamma_decode=0.5, min_tokens=4)


@pytest.fixture(scope="module")
def videos(tiny, clips):
    vis = tiny.vision_config
    chat = ChatFormat(tiny.tokenizer)
    out = []
    for clip in clips:
        inputs = to_model_inputs(sample_video(clip, SamplingConfig(fps=2.0)), patch_size=vis.patch_size,
                                 temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
        out.append((inputs, chat.prefix_ids(inputs.num_visual_tokens)))
    return chat, out


def _explicit_observed(q, k, scale):
    """q [Hq, T, D] (last T of N rows), k [Hkv, N, D] -> [Hq, N]: masked softmax summed over rows."""
    g = q.shape[0] // k.shape[0]
    n, t = k.shape[1], q.shape[1]
    s = torch.einsum("htd,hnd->htn", q.double(), k.repeat_interleave(g, 0).double()) * scale
    visible = torch.arange(n)[None, :] <= (n - t + torch.arange(t))[:, None]
    return torch.softmax(s.masked_fill(~visible, float("-inf")), -1).sum(1)


def test_config_values_are_validated():
    for bad in (dict(observe=0), dict(gamma_decode=0.0), dict(gamma_decode=1.5), dict(min_tokens=-1),
                dict(pool=2), dict(gpu_kv_budget_gb=-1.0), dict(observe_chunk=8)):
        with pytest.raises(ConfigError):
            SlimDecodeConfig(**bad)


@pytest.mark.parametrize("hq,hkv,n,t,chunk", [(4, 2, 300, 7, 64), (7, 1, 129, 32, 128), (4, 4, 50, 50, 8192)])
def test_observed_attention_is_the_row_summed_causal_softmax(hq, hkv, n, t, chunk):
    torch.manual_seed(n)
    q, k = torch.randn(hq, t, 16) * 2, torch.randn(hkv, n, 16)
    out = observed_attention(q, k, 0.25, chunk)
    assert_close("observed", out, _explicit_observed(q, k, 0.25), rel_rms=1e-5)
    assert torch.allclose(out.sum(1), torch.full((hq,), float(t)), atol=1e-4)  # each row sums to 1


def test_selector_packs_the_kept_rows_of_each_head():
    torch.manual_seed(1)
    hq, hkv, n, d = 4, 2, 96, 16
    q, k, v = torch.randn(1, hq, 10, d) * 3, torch.randn(1, hkv, n, d), torch.randn(1, hkv, n, d)
    visual = torch.zeros(n, dtype=torch.bool)
    visual[8:88] = True
    cfg = SlimDecodeConfig(gamma_decode=0.6, min_tokens=4, observe=6)
    selector = SlimSelector(cfg, visual, hkv, torch.device("cpu"))
    selector(type("Attn", (), {"layer_idx": 3})(), q, k, v, 0.25)
    keep = select_slim_tokens(_explicit_observed(q[0, :, -6:], k[0], 0.25)[:, None].float(), visual, cfg.params,
                              num_kv_heads=hkv)
    packed = selector.packed[3]
    offsets = packed.offsets.tolist()
    for u in range(hkv):
        assert torch.equal(packed.k[offsets[u]:offsets[u + 1]], k[0, u, keep[u]])
        assert torch.equal(packed.v[offsets[u]:offsets[u + 1]], v[0, u, keep[u]])
        assert set((~visual).nonzero()[:, 0].tolist()) <= set(keep[u].tolist())  # text always kept
    assert selector.kept_visual[3] == [len(idx) - 16 for idx in keep] and max(selector.kept_visual[3]) < 80


def test_gamma_one_equals_dense_decoding_token_for_token(tiny, videos):
    chat, vids = videos
    dense = Engine(tiny, EngineConfig(chunk_size=128))
    slim = Engine(tiny, EngineConfig(chunk_size=128), slim_decode=SlimDecodeConfig(gamma_decode=1.0))
    for (inputs, prefix), question in zip(vids, ["What happens in this video?", "Describe the scene", "Go"]):
        turn = chat.first_turn_ids(question)
        params = SamplingParams(max_new_tokens=12)
        expected = list(dense.generate(dense.ingest(prefix, inputs), turn, params, []))
        conv = slim.ingest(prefix, inputs)
        assert list(slim.generate(conv, turn, params, [])) == expected
        stats = conv.stats["slim"]
        assert stats["kept_visual_share"] == 1.0 and stats["offloaded_layers"] == []
        # the cache is read in place (alias_kv): decoding holds only its tails, not a copy of the KV
        assert stats["decode_device_bytes"] < stats["packed_bytes"] / 4


def test_multi_turn_equals_rerunning_the_conversation(tiny, videos):
    chat, vids = videos
    inputs, prefix = vids[0]
    engine = Engine(tiny, slim_decode=SlimDecodeConfig(gamma_decode=1.0))
    params = SamplingParams(max_new_tokens=6)
    conv = engine.ingest(prefix, inputs)
    first = list(engine.generate(conv, chat.first_turn_ids("What happens?"), params, chat.stop_ids))
    answer1 = [t for t in first if t not in chat.stop_ids]
    assert conv.pending == answer1 and conv.length == len(prefix) + len(chat.first_turn_ids("What happens?"))
    second_turn = chat.next_turn_ids("And then?")
    second = list(engine.generate(conv, second_turn, params, chat.stop_ids))
    fresh = engine.ingest(prefix, inputs)
    history = chat.first_turn_ids("What happens?") + answer1 + second_turn
    assert list(engine.generate(fresh, history, params, chat.stop_ids)) == second


class _Capture:
    """plan_factory whose text-stage plan records each layer's q/k of the question prefill."""

    def __init__(self):
        self.qk = {}

    def __call__(self, stage):
        return AttentionPlan(observe=self.record) if stage == "text" else None

    def record(self, module, q, k, v, scale):
        self.qk[module.layer_idx] = (q[0].clone(), k[0].clone())


class _MaskedDecode:
    """Dense decoding restricted, per KV head, to the kept prompt keys (generated keys always visible)."""

    def __init__(self, keep, n_prompt):
        self.keep, self.n_prompt = keep, n_prompt

    def __call__(self, stage):
        return AttentionPlan(sparse=self.attend) if stage == "decode" else None

    def attend(self, module, q, k, v, scale):
        hq, hkv, tk = q.shape[1], k.shape[1], k.shape[2]
        allowed = torch.zeros(hkv, tk, dtype=torch.bool, device=q.device)
        allowed[:, self.n_prompt:] = True
        for u, idx in enumerate(self.keep[module.layer_idx]):
            allowed[u, idx] = True
        mask = allowed.repeat_interleave(hq // hkv, 0)[None, :, None, :]  # [1, Hq, 1, Tk]
        g = hq // hkv
        s = (q @ k.repeat_interleave(g, 1).transpose(-1, -2)) * scale
        return torch.softmax(s.masked_fill(~mask, float("-inf")), -1) @ v.repeat_interleave(g, 1)


def test_slimmed_decode_equals_dense_decode_over_the_kept_keys(tiny, videos):
    chat, vids = videos
    inputs, prefix = vids[1]
    turn = chat.first_turn_ids("What happens in this video?")
    params = SamplingParams(max_new_tokens=10)
    capture = _Capture()
    slim = Engine(tiny, plan_factory=capture, slim_decode=SLIM)
    conv = slim.ingest(prefix, inputs)
    tokens = list(slim.generate(conv, turn, params, []))
    n_prompt = conv.length
    visual = torch.tensor(conv.ids) == tiny.model.config.video_token_id
    keep = {layer: select_slim_tokens(observed_attention(q[:, -SLIM.observe:], k, q.shape[-1] ** -0.5)[:, None],
                                      visual.to(k.device), SLIM.params, num_kv_heads=k.shape[0])
            for layer, (q, k) in capture.qk.items()}
    kept = conv.stats["slim"]["kept_visual_per_layer"]
    n_text = n_prompt - int(visual.sum())
    assert {str(layer): [len(i) - n_text for i in idx] for layer, idx in keep.items()} == kept
    assert 0 < conv.stats["slim"]["kept_visual_share"] < 0.75  # flat attention: about gamma of the tokens
    reference = Engine(tiny, plan_factory=_MaskedDecode(keep, n_prompt))
    assert list(reference.generate(reference.ingest(prefix, inputs), turn, params, [])) == tokens


def test_host_kv_streamed_prefill_equals_device_prefill(tiny, videos):
    chat, vids = videos
    inputs, prefix = vids[2]
    engine = Engine(tiny)
    device_conv = engine.ingest(prefix, inputs)
    host_conv = to_host(engine, engine.ingest(prefix, inputs))
    turn = chat.first_turn_ids("Who is there?")
    with torch.inference_mode():
        expected = engine.forward_text(device_conv, turn, "text")
        logits = engine.forward_text(host_conv, turn, "text")
    assert_close("streamed logits", logits, expected, rel_rms=1e-5)
    assert host_conv.length == device_conv.length == host_conv.cache.get_seq_length()
    for (k1, v1), (k2, v2) in zip(host_conv.cache.iter_layers(), device_conv.cache.iter_layers()):
        assert_close("k", k1.to(k2.device), k2, rel_rms=1e-5)   # host memory vs the device cache
        assert_close("v", v1.to(v2.device), v2, rel_rms=1e-5)
    # dense decoding works on a host conversation too (every token streams the KV)
    params = SamplingParams(max_new_tokens=5)
    more = chat.next_turn_ids("And then?")
    assert list(engine.generate(host_conv, more, params, [])) == list(engine.generate(device_conv, more, params, []))


def test_dense_decode_copies_a_streamed_kv_and_reads_a_device_cache_in_place(tiny, videos, monkeypatch):
    """gamma_decode = 1: a device cache is read in place (alias_kv); a host conversation's prefill hands
    over staging buffers that later layers overwrite, so its KV is packed (copied) instead."""
    import omnivideo.engine.decode.slim_decode as slim_decode

    chat, vids = videos
    inputs, prefix = vids[0]
    engine = Engine(tiny, slim_decode=SlimDecodeConfig(gamma_decode=1.0))
    turn = chat.first_turn_ids("What happens?")
    params = SamplingParams(max_new_tokens=4)
    made = []
    real = slim_decode.SlimSelector

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(slim_decode, "SlimSelector", Recording)  # the real selector, recorded
    device_tokens = list(engine.generate(engine.ingest(prefix, inputs), turn, params, []))
    host_tokens = list(engine.generate(to_host(engine, engine.ingest(prefix, inputs)), turn, params, []))
    assert host_tokens == device_tokens
    on_device, streamed = made
    assert on_device.alias and all(p.aliased for p in on_device.packed.values())
    assert not streamed.alias and not any(p.aliased for p in streamed.packed.values())


def test_offloaded_layers_and_host_conversations_give_the_same_tokens(tiny, videos):
    chat, vids = videos
    inputs, prefix = vids[0]
    turn = chat.first_turn_ids("Describe the scene")
    params = SamplingParams(max_new_tokens=8)
    on_device = Engine(tiny, slim_decode=SLIM)
    conv = on_device.ingest(prefix, inputs)
    expected = list(on_device.generate(conv, turn, params, []))
    # room for layer 0's packed KV but not for both: layer 1 stays in host memory and is staged per step
    budget = 0.6 * conv.stats["slim"]["device_packed_bytes"] / 2 ** 30
    offload = Engine(tiny, slim_decode=SlimDecodeConfig(gamma_decode=0.5, min_tokens=4, gpu_kv_budget_gb=budget))
    conv = to_host(offload, offload.ingest(prefix, inputs))
    assert list(offload.generate(conv, turn, params, [])) == expected
    assert conv.stats["slim"]["offloaded_layers"] == [1]


def test_stop_token_and_early_exit_leave_the_answer_pending(tiny, videos):
    chat, vids = videos
    inputs, prefix = vids[1]
    engine = Engine(tiny, slim_decode=SLIM)
    turn = chat.first_turn_ids("Go")
    params = SamplingParams(max_new_tokens=8)
    free = list(engine.generate(engine.ingest(prefix, inputs), turn, params, []))
    stop = free[3]
    conv = engine.ingest(prefix, inputs)
    stopped = list(engine.generate(conv, turn, params, [stop]))
    assert stopped == free[:free.index(stop) + 1] and conv.pending == free[:free.index(stop)]
    conv = engine.ingest(prefix, inputs)
    for i, _ in enumerate(engine.generate(conv, turn, params, [])):
        if i == 1:
            break
    assert conv.pending == free[:2] and conv.length == len(prefix) + len(turn)
