"""OmniSparse on learned attention: the shipped `synth` checkpoint through the real CLI (`ask --json`).

Random-weight models have flat attention, so there the presets only exercise the dense fallback. The
trained checkpoint's attention is real: on a 36 s held-out clip (9,238 prefix tokens, prefill chunks of
4,096, so two chunks per layer have enough keys to estimate) `balanced` must actually skip work, i.e.
compute well under the 0.6 share of causal blocks where the fallback would fire, and still give the
dense answer (which is the right one for this clip).
"""
import pytest

from cli_runner import run_cli
from omnivideo.synth.heldout import EVAL_SEED_BASE, write_heldout


def _ask(home, video, question, attention) -> dict:
    import json

    out = run_cli("--data-dir", home, "ask", video, question, "--model", "synth", "--attention", attention,
                  "--json", "--max-new-tokens", "8")
    assert out.exit_code == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth-sparse")
    rows = write_heldout(out / "v", [EVAL_SEED_BASE + 502], seconds=36, kinds=("needle",))
    row = next(r for r in rows if "star" in r["question"])
    return out, out / "v" / row["video"], row["question"], row["answer"]


def test_balanced_runs_sparse_on_the_trained_model_and_keeps_the_dense_answer(clip):
    out, video, question, expected = clip
    dense = _ask(out / "dense", video, question, "dense")
    balanced = _ask(out / "balanced", video, question, "balanced")
    assert dense["prefill"] is None                                   # dense: nothing estimated
    p = balanced["prefill"]
    assert p["sparse_calls"] > 0 and p["density"] < 0.6, p           # work really skipped, not a fallback
    assert p["lazy_share"] is not None and p["flat_share"] is not None   # what the sparse chunks did
    assert balanced["answer"] == dense["answer"] == expected, (balanced["answer"], dense["answer"])
