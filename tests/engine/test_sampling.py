"""Token sampling: greedy is argmax; top-k/top-p restrict the support; seeds reproduce."""
import pytest
import torch

from omnivideo.engine.sampling import SamplingParams, sample_next_token
from omnivideo.errors import ConfigError


def test_greedy_is_argmax():
    logits = torch.tensor([0.1, 3.0, -1.0, 2.9])
    assert int(sample_next_token(logits, SamplingParams(), None)) == 1


def test_top_k_and_top_p_restrict_the_support():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    for params, allowed in [(SamplingParams(temperature=1.0, top_k=2, seed=0), {0, 1}),
                            (SamplingParams(temperature=1.0, top_p=0.7, seed=0), {0, 1}),
                            (SamplingParams(temperature=1.0, top_p=0.4, seed=0), {0})]:
        gen = params.generator(torch.device("cpu"))
        seen = {int(sample_next_token(logits, params, gen)) for _ in range(300)}
        assert seen == allowed, (params, seen)


def test_seeded_sampling_reproduces():
    logits = torch.randn(100)
    p = SamplingParams(temperature=0.8, seed=42)
    g1, g2 = p.generator(torch.device("cpu")), p.generator(torch.device("cpu"))
    a = [int(sample_next_token(logits, p, g1)) for _ in range(50)]
    b = [int(sample_next_token(logits, p, g2)) for _ in range(50)]
    assert a == b and len(set(a)) > 1


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_p": 0}, {"top_k": -1}, {"max_new_tokens": 0}])
def test_invalid_params_are_named_errors(kwargs):
    with pytest.raises(ConfigError):
        SamplingParams(**kwargs)
