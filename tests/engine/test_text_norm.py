"""The language model's RMSNorms through `omnivideo.kernels.layers.rms_norm` (omnivideo/engine/fused/text_norm.py): installed by the engine's
loaders, removed for transformers' baseline, the same numbers as transformers' own norms."""
import pytest
import torch

from omnivideo.engine.attention import ATTN_NAME
from omnivideo.engine.fused.text_norm import fuse_text_norms, unfuse_text_norms
from omnivideo.bench.random_model import random_model, set_text_attention

CPU = torch.device("cpu")


def _norms(loaded):
    lm = loaded.model.model.language_model
    return [n for layer in lm.layers for n in (layer.input_layernorm, layer.post_attention_layernorm)] + [lm.norm]


def _lm_out(loaded, embeds):
    with torch.inference_mode():
        return loaded.model.model.language_model(inputs_embeds=embeds).last_hidden_state


def test_fused_norms_equal_transformers_and_are_removable():
    loaded = random_model("tiny", CPU, quant="none")             # set_text_attention(ours) fused them
    norms = _norms(loaded)
    assert all("forward" in n.__dict__ for n in norms)
    assert not any("forward" in b.norm1.__dict__ and b.norm1.forward.__name__ == "_fused_forward"
                   for b in loaded.model.model.visual.blocks)   # the vision tower's norms are not ours to route
    embeds = torch.randn(1, 37, loaded.text_config.hidden_size) * 3
    fused = _lm_out(loaded, embeds)
    assert unfuse_text_norms(loaded.model) == len(norms) and not any("forward" in n.__dict__ for n in norms)
    plain = _lm_out(loaded, embeds)
    assert torch.equal(fused, plain)                              # the reference is transformers' arithmetic
    assert fuse_text_norms(loaded.model) == len(norms) and fuse_text_norms(loaded.model) == 0   # idempotent
    set_text_attention(loaded.model, "sdpa")                      # the baseline gets transformers' norms back
    assert not any("forward" in n.__dict__ for n in norms)
    set_text_attention(loaded.model, ATTN_NAME)
    assert all("forward" in n.__dict__ for n in norms)


def test_fused_norm_really_normalises_and_falls_back_when_it_must():
    loaded = random_model("tiny", CPU, quant="none")
    norm = _norms(loaded)[0]
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, norm.weight.numel()))
    x = torch.randn(2, 5, norm.weight.numel()) * 7
    expected = type(norm).forward(norm, x)
    assert torch.equal(norm(x), expected)
    ref = norm.weight * (x / x.pow(2).mean(-1, keepdim=True).add(norm.variance_epsilon).sqrt())
    torch.testing.assert_close(norm(x), ref, rtol=1e-5, atol=1e-5)
    x16 = x.half()                                                # dtype differs from the weight: transformers' path
    assert torch.equal(norm(x16), type(norm).forward(norm, x16))


@pytest.mark.gpu
def test_fused_norms_bf16_on_gpu_equal_transformers():
    loaded = random_model("tiny", torch.device("cuda"), quant="none")
    loaded.model.to(torch.bfloat16)
    norms = _norms(loaded)
    x = torch.randn(3, 4096, norms[0].weight.numel(), device="cuda", dtype=torch.bfloat16) * 5
    for n in norms[:2]:
        ours, theirs = n(x), type(n).forward(n, x)
        # same rounding steps; the fp32 mean may sum in another order: at most one bf16 ulp apart
        torch.testing.assert_close(ours, theirs, rtol=8e-3, atol=1e-2)
