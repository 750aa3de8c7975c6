"""The language model's rotary step through `omnivideo.kernels.layers.text_rotary` (omnivideo/engine/fused/text_rotary.py): installed by
the engine's loaders, removed for transformers' baseline, active only inside fused attention modules."""
import pytest
import torch
from conftest import DEVICE, assert_close

from omnivideo.engine.attention import ATTN_NAME
from omnivideo.engine.fused.text_rotary import _ACTIVE, _merged, fuse_text_rotary, unfuse_text_rotary
from omnivideo.bench.random_model import random_model, set_text_attention


def _attns(loaded):
    return [layer.self_attn for layer in loaded.model.model.language_model.layers]


def _flag_seen(loaded, embeds) -> list[bool]:
    """The dispatch flag as the q projection sees it, in every layer."""
    seen = []
    hooks = [a.q_proj.register_forward_hook(lambda *_: seen.append(_ACTIVE.get())) for a in _attns(loaded)]
    with torch.inference_mode():
        out = loaded.model.model.language_model(inputs_embeds=embeds).last_hidden_state
    for h in hooks:
        h.remove()
    return seen, out


def test_fused_attention_sets_the_flag_and_is_removable():
    loaded = random_model("tiny", torch.device("cpu"), quant="none")   # set_text_attention(ours) fused them
    attns = _attns(loaded)
    assert all("forward" in a.__dict__ for a in attns)
    embeds = torch.randn(1, 9, loaded.text_config.hidden_size)
    seen, fused = _flag_seen(loaded, embeds)
    assert seen == [True] * len(attns) and _ACTIVE.get() is False      # set inside, reset after
    assert unfuse_text_rotary(loaded.model) == len(attns) and not any("forward" in a.__dict__ for a in attns)
    seen, plain = _flag_seen(loaded, embeds)
    assert seen == [False] * len(attns)
    assert torch.equal(fused, plain)      # on CPU the dispatcher hands every call to transformers
    assert fuse_text_rotary(loaded.model) == len(attns) and fuse_text_rotary(loaded.model) == 0   # idempotent
    set_text_attention(loaded.model, "sdpa")                          # the baseline: transformers' rotary
    assert not any("forward" in a.__dict__ for a in attns)
    set_text_attention(loaded.model, ATTN_NAME)
    assert all("forward" in a.__dict__ for a in attns)


def test_mrope_merge_takes_section_i_from_axis_i_mod_3_and_is_cached():
    cos, sin = torch.randn(3, 2, 5, 16), torch.randn(3, 2, 5, 16)
    mc, ms = _merged(cos, sin, [2, 3, 3])
    sections = [2, 3, 3, 2, 3, 3]
    starts = [0, 2, 5, 8, 10, 13]
    for i, (start, width) in enumerate(zip(starts, sections)):
        assert torch.equal(mc[..., start:start + width], cos[i % 3][..., start:start + width])
        assert torch.equal(ms[..., start:start + width], sin[i % 3][..., start:start + width])
    assert _merged(cos, sin, [2, 3, 3])[0] is mc                       # the other layers of the forward
    assert _merged(cos.clone(), sin, [2, 3, 3])[0] is not mc           # a new forward recomputes


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)], ids=["fp32", "bf16"])
def test_fused_rotary_on_cuda_matches_transformers(dtype, tol):
    loaded = random_model("tiny", torch.device(DEVICE), quant="none")
    loaded.model.to(dtype)
    embeds = torch.randn(1, 17, loaded.text_config.hidden_size, device=DEVICE, dtype=dtype)
    with torch.inference_mode():
        fused = loaded.model.model.language_model(inputs_embeds=embeds).last_hidden_state
        unfuse_text_rotary(loaded.model)
        plain = loaded.model.model.language_model(inputs_embeds=embeds).last_hidden_state
    assert_close("hidden", fused, plain, rel_rms=tol)
    if dtype == torch.bfloat16:
        assert not torch.equal(fused, plain)  # the kernel ran (one rounding instead of transformers' three)
