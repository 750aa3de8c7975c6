"""The attention hook: routed to text layers only, exact dense causal math, plan callbacks."""
import pytest
import torch
import torch.nn.functional as F

from omnivideo.engine.attention import (ATTN_NAME, AttentionPlan, dense_causal_attention, offset_backend, register_attention,
                              set_offset_backend)
from omnivideo.engine.fused.vision_attention import VISION_ATTN_NAME


def _reference(q, k, v, scale):
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    tq, tk = q.shape[2], k.shape[2]
    mask = torch.arange(tk)[None, :] <= (tk - tq + torch.arange(tq))[:, None]
    scores = (q @ k.transpose(-1, -2)) * scale
    return F.softmax(scores.masked_fill(~mask, float("-inf")), -1) @ v


def test_dense_causal_attention_with_a_past_matches_the_definition():
    torch.manual_seed(0)
    for tq, tk in [(1, 9), (5, 5), (7, 20), (33, 100)]:
        q, k, v = torch.randn(1, 4, tq, 16), torch.randn(1, 2, tk, 16), torch.randn(1, 2, tk, 16)
        out = dense_causal_attention(q, k, v, 0.25)
        assert torch.allclose(out, _reference(q, k, v, 0.25), atol=1e-5), (tq, tk)


def test_hook_is_used_by_text_layers_only_and_sees_the_plan(tiny):
    register_attention()
    assert tiny.model.config.text_config._attn_implementation == ATTN_NAME
    # the vision tower has its own hook (omnivideo/engine/fused/vision_attention.py), never this one
    assert tiny.model.config.vision_config._attn_implementation == VISION_ATTN_NAME
    seen = []
    plan = AttentionPlan(observe=lambda module, q, k, v, scale: seen.append((module.layer_idx, q.shape, k.shape)))
    lm = tiny.model.model.language_model
    with torch.inference_mode():
        lm(inputs_embeds=torch.randn(1, 5, lm.config.hidden_size, device=tiny.device),
           position_ids=torch.arange(5, device=tiny.device).view(1, 1, 5).expand(3, 1, 5), omni_plan=plan)
    assert [s[0] for s in seen] == list(range(lm.config.num_hidden_layers))
    hq, hkv = lm.config.num_attention_heads, lm.config.num_key_value_heads
    assert seen[0][1][1] == hq and seen[0][2][1] == hkv  # GQA arrives unexpanded


def test_a_sparse_callback_replaces_the_output(tiny):
    lm = tiny.model.model.language_model
    x = torch.randn(1, 6, lm.config.hidden_size, device=tiny.device)
    pos = torch.arange(6, device=tiny.device).view(1, 1, 6).expand(3, 1, 6)
    zero = AttentionPlan(sparse=lambda module, q, k, v, scale: torch.zeros_like(q))
    with torch.inference_mode():
        dense = lm(inputs_embeds=x, position_ids=pos).last_hidden_state
        zeroed = lm(inputs_embeds=x, position_ids=pos, omni_plan=zero).last_hidden_state
    assert not torch.allclose(dense, zeroed)


@pytest.mark.parametrize("backend", ["mask", "split-math", "lower-right"])
def test_every_cpu_backend_for_chunks_with_a_past_matches_the_definition(backend):
    """The split path (past without a mask + causal diagonal, merged by log-sum-exp) is exact."""
    torch.manual_seed(1)
    set_offset_backend(backend)
    try:
        for tq, tk in [(2, 3), (7, 20), (33, 100), (64, 64 * 5)]:
            q, k, v = torch.randn(1, 6, tq, 32), torch.randn(1, 2, tk, 32), torch.randn(1, 2, tk, 32)
            out = dense_causal_attention(q, k, v, 32 ** -0.5)
            assert torch.allclose(out, _reference(q, k, v, 32 ** -0.5), atol=1e-5), (backend, tq, tk)
    finally:
        set_offset_backend(None)
    assert offset_backend(q, k) == "mask"   # the automatic choice on a CPU


def test_cache_views_with_strided_heads_work_through_the_split_path():
    """Chunks read K/V as views of a larger cache buffer (head stride = capacity * D)."""
    torch.manual_seed(2)
    buf_k, buf_v = torch.randn(1, 2, 200, 16), torch.randn(1, 2, 200, 16)
    k, v = buf_k[:, :, :90], buf_v[:, :, :90]
    q = torch.randn(1, 40, 4, 16).transpose(1, 2)          # [B, H, T, D] with T-major memory, as the model's
    set_offset_backend("split-math")
    try:
        out = dense_causal_attention(q, k, v, 0.25)
    finally:
        set_offset_backend(None)
    assert torch.allclose(out, _reference(q, k, v, 0.25), atol=1e-5)


@pytest.mark.gpu
def test_cuda_backends_for_chunks_with_a_past_match_the_definition_in_bf16():
    """Each backend that passes its own check computes the definition at Qwen2.5-VL-7B's head layout."""
    from omnivideo.engine.attention import OFFSET_BACKENDS, _passes_check

    torch.manual_seed(3)
    q = torch.randn(1, 28, 512, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(1, 4, 512 * 3, 128, device="cuda", dtype=torch.bfloat16) for _ in "kv")
    ref = _reference(q.float().cpu(), k.float().cpu(), v.float().cpu(), 128 ** -0.5)
    usable = [b for b in OFFSET_BACKENDS if b == "mask" or _passes_check(b, q, 28, 4)]
    print("usable dense offset backends:", usable, "automatic:", offset_backend(q, k))
    for backend in usable:
        set_offset_backend(backend)
        try:
            out = dense_causal_attention(q, k, v, 128 ** -0.5).float().cpu()
        finally:
            set_offset_backend(None)
        rel = ((out - ref).norm() / ref.norm()).item()
        assert rel < 1e-2, (backend, rel)
    assert offset_backend(q, k) == usable[0]
