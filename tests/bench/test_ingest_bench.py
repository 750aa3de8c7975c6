"""`bench ingest --small`: the tiny model on CPU, two small sizes and a short generated clip end to end.

Checks the result's schema, its accounting (frames per size, stages, the timeline's lanes) and the
files written, not timings.
"""
import json

from cli_runner import bench_ok
from omnivideo.bench.ingest.ingest import SMALL


def test_small_run_writes_a_consistent_result(tmp_path):
    bench_ok("ingest", "--small", "--out", tmp_path)
    result = json.loads((tmp_path / "ingest.json").read_text())
    rows = {(r["tokens"], r["variant"]): r for r in result["results"]}
    assert set(rows) == {(n, v) for n in SMALL.tokens for v in ("ours_dense", "ours_balanced", "hf_generate")}
    per_group = result["tokens_per_group"]
    assert per_group == (SMALL.frame_size // 28) ** 2
    for (n, _), row in rows.items():
        assert "error" not in row, row
        assert row["frames"] == 2 * n // per_group
        assert set(row["stages_s"]) == {"preprocess", "vision", "prefill", "first_token"}
        assert row["ttft_s"] > 0 and len(row["ttft_runs_s"]) == (SMALL.repeats if row["variant"] != "hf_generate"
                                                                  else SMALL.hf_repeats)
    modes = {e["mode"]: e for e in result["e2e"]}
    assert set(modes) == {"pipelined", "sequential"}
    pipelined = modes["pipelined"]
    assert pipelined["visual_tokens"] == modes["sequential"]["visual_tokens"] > 0
    stages = {x["stage"] for x in pipelined["timeline"]}
    assert {"decode", "preprocess", "vision", "prefill", "first_token"} <= stages
    assert any(x["lane"].startswith("reader") for x in pipelined["timeline"])
    assert all(x["end_s"] >= x["start_s"] >= 0 for x in pipelined["timeline"])
    assert set(pipelined["share_of_ttft"]) == set(pipelined["busy_s"])
    assert not result["partial"]
    for name in ("report.md", "ingest.png", "ingest_timeline.png"):
        assert (tmp_path / name).stat().st_size > 0
    report = (tmp_path / "report.md").read_text()
    assert "| 128 | ours_balanced |" in report and "End to end, pipelined" in report
    again = tmp_path / "again"
    bench_ok("ingest", "--from-json", tmp_path / "ingest.json", "--out", again)
    assert (again / "report.md").read_text() == report


def test_fp8_linears_variant(tmp_path):
    """--prefill-linears bf16 fp8 runs ours_<preset> and ours_<preset>_fp8 (the CPU's FP8 is the emulation)."""
    bench_ok("ingest", "--small", "--out", tmp_path, "--preset", "dense", "--prefill-linears", "bf16",
             "--prefill-linears", "fp8", "--video", "", "--no-hf", "--tokens", "64")
    result = json.loads((tmp_path / "ingest.json").read_text())
    rows = {r["variant"]: r for r in result["results"]}
    assert set(rows) == {"ours_dense", "ours_dense_fp8"}
    assert rows["ours_dense"]["prefill_linears"] == "bf16" and rows["ours_dense_fp8"]["prefill_linears"] == "fp8"
    assert "error" not in rows["ours_dense_fp8"] and "emulated" in result["prefill_linears"]["ours_dense_fp8"]
    assert "Prefill linears: " in (tmp_path / "report.md").read_text()
