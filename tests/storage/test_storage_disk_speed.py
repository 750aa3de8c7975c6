"""The throughput probe behind `bench cache` runs end to end and cleans up after itself (no speeds asserted)."""
from omnivideo.storage.disk_speed import measure


def test_measure_reports_every_rate_and_leaves_nothing(tmp_path):
    result = measure(tmp_path, gib=0.004, repeats=2, num_layers=3, kv_heads=2, head_dim=16)
    assert set(result["gbps"]) == {"sequential_read", "sequential_read_direct", "sequential_read_direct_2x", "load_prefetch2", "load_serial", "load_hot",
                                   "load_vs_sequential", "write"}
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert result["entry_bytes"] >= 0.9 * 0.004 * 2**30 and result["tokens"] > 0
    assert list(tmp_path.iterdir()) == []
