"""The attention hook: routed to text layers only, exact dense causal math, plan callbacks."""
import torch
import torch.nn.functional as F

from engine.attention import ATTN_NAME, AttentionPlan, dense_causal_attention, register_attention


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
    assert tiny.model.config.vision_config._attn_implementation == "sdpa"
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
