"""`bench decode --family qwen3_vl`: the decode benchmark at Qwen3-VL shapes (tiny with --small, on CPU)."""
import json

from cli_runner import bench_ok


def test_decode_bench_runs_at_qwen3_vl_shapes(tmp_path):
    bench_ok("decode", "--small", "--family", "qwen3_vl", "--no-hf", "--out", tmp_path)
    result = json.loads((tmp_path / "decode.json").read_text())
    assert result["model"]["id"] == "random-tiny-qwen3-vl" and result["config"]["size"] == "tiny-qwen3-vl"
    # K + V x 3 layers x 2 KV heads x head dim 16 (not hidden / heads = 8) x fp32: the family's KV shape
    assert result["model"]["kv_bytes_per_token"] == 2 * 3 * 2 * 16 * 4
    assert {r["variant"] for r in result["results"]} >= {"ours_dense", "ours_slim_0.95"}
