"""Structured workload properties and the kernel bench's output schema (CPU toy sizes, no timings)."""
import json

import pytest
import torch

from omnivideo.bench.prefill.kernels import BenchConfig, run_kernel_bench
from omnivideo.bench.workload import head_weights, structured_qk
from omnivideo.errors import ConfigError

FRAMES, PATCHES, HQ, HKV, D = 12, 64, 8, 2, 64


def _attention(seed: int) -> torch.Tensor:
    """Dense causal softmax [HQ, N, N] of one simulated layer."""
    q, k, _ = structured_qk(FRAMES, PATCHES, HQ, HKV, D, seed=seed)
    s = torch.einsum("hqd,hkd->hqk", q, k.repeat_interleave(HQ // HKV, 0)) * D ** -0.5
    n = q.shape[1]
    return torch.softmax(s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf")), -1)


def test_structured_qk_shapes_dtype_and_seed():
    q, k, v = structured_qk(3, 49, 4, 2, 32, seed=1, prefix_tokens=5, dtype=torch.float16)
    assert q.shape == (4, 5 + 3 * 49, 32) and k.shape == v.shape == (2, 5 + 3 * 49, 32)
    assert q.dtype == k.dtype == v.dtype == torch.float16
    again = structured_qk(3, 49, 4, 2, 32, seed=1, prefix_tokens=5, dtype=torch.float16)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v), again))
    other = structured_qk(3, 49, 4, 2, 32, seed=2, prefix_tokens=5, dtype=torch.float16)
    assert not torch.equal(q, other[0])


def test_structured_attention_has_the_stated_structure():
    """Local heads look at their own and nearby frames, flat heads spread, every head sinks."""
    seed = next(s for s in range(50) if {"local", "flat"} <= set(head_weights(HQ, s)[0]))
    kinds, _ = head_weights(HQ, seed)
    p = _attention(seed)
    rows = torch.arange(16 + 8 * PATCHES, p.shape[1])           # queries in frames 8.. (long past)
    frame = (torch.arange(p.shape[1]) - 16).div(PATCHES, rounding_mode="floor")
    near = (frame[None, :] >= frame[rows, None] - 1) & (frame[None, :] >= 0)   # own + previous frame
    near_mass = (p[:, rows] * near).sum(-1).mean(-1)
    sink_mass = p[:, rows, :4].sum(-1).mean(-1)
    entropy = -(p[:, rows] * p[:, rows].clamp_min(1e-30).log()).sum(-1).mean(-1)
    local = torch.tensor([kd == "local" for kd in kinds])
    flat = torch.tensor([kd == "flat" for kd in kinds])
    assert near_mass[local].min() > 0.5, near_mass
    assert near_mass[flat].max() < near_mass[local].min()
    assert entropy[flat].min() > entropy[local].max()
    assert sink_mass.mean() > 0.1 and sink_mass[flat].min() > 0.2, sink_mass


TINY = BenchConfig(lengths=(128,), densities=(0.5,), hq=4, hkv=2, head_dim=32, dtype="float32", block_size=16,
                   window=32, fidelity_frames=2, patches_per_frame=48, fidelity_layers=1, recall_rows=16)


def test_kernel_bench_writes_json_report_and_plot(tmp_path):
    result = run_kernel_bench(out_dir=tmp_path, config=TINY)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps({**result, "complete": True}))
    assert (tmp_path / "report.md").read_text().startswith("# OmniSparse prefill kernels")
    assert (tmp_path / "speedup.png").read_bytes()[:4] == b"\x89PNG"
    assert {"device", "versions", "config", "workload", "kernel", "fidelity", "targets"} <= set(result)
    (row,) = result["kernel"]
    assert row["length"] == 128 and row["sdpa_ms"] > 0 and row["dense_ours_ms"] > 0
    (point,) = row["points"]
    assert {"target_density", "density", "estimate_ms", "attention_ms", "total_ms", "speedup",
            "estimate_over_attention"} <= set(point)
    assert 0.5 - 0.05 <= point["density"] <= 1.0
    assert [e["preset"] for e in result["fidelity"]] == ["balanced", "fast"]
    for e in result["fidelity"]:
        assert 0 < e["density"] <= 1 and 0 < e["oracle_density_mean"] <= 1
        assert 0 < e["recall_p5"] <= e["recall_mean"] <= 1 + 1e-6
        assert 0 < e["no_fallback_recall_mean"] <= 1 + 1e-6 and e["out_rel_err"] >= 0
        if e["dense_fallback"]:
            assert e["recall_mean"] == pytest.approx(1.0) and e["out_rel_err"] < 1e-5
    assert all({"target", "goal", "value", "met"} <= set(t) for t in result["targets"])


def test_bench_rejects_bf16_on_cpu_and_bad_config(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("bf16 is fine on a GPU")
    with pytest.raises(ConfigError, match="bf16"):
        run_kernel_bench(out_dir=tmp_path, config=BenchConfig(lengths=(128,)))
    with pytest.raises(ConfigError, match="multiple"):
        BenchConfig(hq=6, hkv=4)
