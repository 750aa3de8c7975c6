"""The decode-slimming benchmark on a tiny structured workload: sweep invariants and written report."""
import json

from omnivideo.bench.slimming.slimming import SlimmingBench, run
from omnivideo.bench.slimming.report import write_report

TINY = SlimmingBench(num_q_heads=4, num_kv_heads=2, head_dim=32, frames=3, patches=16, observe=8,
                     decode_queries=24, layers=2, min_tokens=4, kernel_queries=1)


def test_sweep_is_nested_and_exact_at_gamma_one(tmp_path):
    result = run(TINY)
    sweep = result["sweep"]
    assert [r["gamma_decode"] for r in sweep] == list(TINY.gammas)
    assert sweep[-1]["size_ratio"] == 1.0 and sweep[-1]["error_mean"] < 1e-5  # gamma 1 keeps everything
    for lo, hi in zip(sweep, sweep[1:]):  # a larger gamma keeps a superset: more recall, less saving
        assert hi["size_ratio"] <= lo["size_ratio"] and hi["recall_mean"] >= lo["recall_mean"] - 1e-6
    for layer in result["layers"]:
        kept = [layer["gammas"][str(g)]["kept_visual_per_head"] for g in TINY.gammas]
        assert all(all(a <= b for a, b in zip(x, y)) for x, y in zip(kept, kept[1:]))
        assert all(TINY.min_tokens <= n <= TINY.visual_tokens for n in kept[0])
        assert layer["kernel_check"]["max_rel_error_vs_masked_torch"] < 1e-4  # pack_kv + Triton == torch
    write_report(result, tmp_path)
    assert json.loads((tmp_path / "slimming.json").read_text())["headline"] == result["headline"]
    assert (tmp_path / "slimming.png").stat().st_size > 0
    assert ("NOT met" in (tmp_path / "report.md").read_text()) != result["headline"]["met"]
