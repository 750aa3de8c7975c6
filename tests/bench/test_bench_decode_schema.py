"""`bench decode --small`: the tiny model (NF4 through bitsandbytes' CPU path) on CPU, two short contexts.

Checks the result's schema and its accounting (bytes read per token, kept shares, the host-memory
section's staged layers), not timings.
"""
import json

from cli_runner import bench_ok
from omnivideo.bench.decode.decode import SMALL


def test_small_run_writes_a_consistent_result(tmp_path):
    bench_ok("decode", "--small", "--out", tmp_path)
    result = json.loads((tmp_path / "decode.json").read_text())
    rows = {(r["context"], r["variant"]): r for r in result["results"]}
    variants = ["ours_dense", "ours_slim_0.95", "ours_slim_0.5", "hf_generate"]
    assert set(rows) == {(n, v) for n in SMALL.contexts for v in variants}
    assert result["nf4_variant"] == "base"  # $OMNIVIDEO_NF4_VARIANT unset
    per_token = result["model"]["kv_bytes_per_token"]
    assert per_token == 2 * 2 * 2 * 16 * 4  # tiny: K and V x 2 layers x 2 KV heads x head dim 16, fp32
    for n in SMALL.contexts:
        dense, hf = rows[(n, "ours_dense")], rows[(n, "hf_generate")]
        # dense decoding reads every prompt token's KV: the prefix plus the question
        assert dense["kv_read_bytes"] == per_token * (n + SMALL.question_tokens) and dense["kept_visual_share"] == 1.0
        assert hf["kv_read_bytes"] >= dense["kv_read_bytes"]
        slim95, slim50 = rows[(n, "ours_slim_0.95")], rows[(n, "ours_slim_0.5")]
        assert slim50["kv_read_bytes"] <= slim95["kv_read_bytes"] <= dense["kv_read_bytes"]
        for row in rows.values():
            assert row["ms_per_token"] > 0 and row["floor_ms"] > 0 and row["x_floor"] > 0 and not row["graph"]
    # at 512 tokens the 448 visual tokens exceed min_tokens (256): gamma 0.5 really slims
    assert rows[(512, "ours_slim_0.5")]["kept_visual_share"] < 0.75
    stream = result["stream"]
    assert "error" not in stream and stream["context"] == SMALL.stream_context
    assert stream["offloaded_layers"] == 1 and stream["host_kv_bytes"] == per_token * SMALL.stream_context
    report = (tmp_path / "report.md").read_text()
    assert "| 512 | ours_slim_0.5 |" in report and "Host-memory prefix of 1024 tokens" in report
    again = tmp_path / "again"
    bench_ok("decode", "--from-json", tmp_path / "decode.json", "--out", again)
    assert (again / "report.md").read_text() == report
