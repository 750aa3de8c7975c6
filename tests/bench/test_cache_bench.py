"""`bench cache` at a toy size: it runs cold and warm in fresh processes and writes JSON, report and plot."""
import json

from cli_runner import bench_ok


def test_cache_bench_writes_its_outputs(tmp_path, tiny):
    out = bench_ok("cache", "--tokens", "1024", "--seconds", "8", "--repeats", "1", "--disk-gib", "0.02",
                   "--out", tmp_path).stdout
    saved = json.loads((tmp_path / "cache.json").read_text())
    assert saved["visual_tokens"] > 500 and f"({saved['visual_tokens']} visual tokens)" in out
    assert saved["runs"]["cold"][0]["cache_hit"] is False and saved["runs"]["warm"][0]["cache_hit"] is True
    assert saved["warm_ttft_s"] > 0 and saved["cold_ttft_s"] > 0
    assert (tmp_path / "cache.png").stat().st_size > 1000 and "warm / cold" in (tmp_path / "report.md").read_text()
