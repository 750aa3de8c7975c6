"""`bench ingest --family qwen3_vl`: cold TTFT at Qwen3-VL shapes (tiny with --small, on CPU): the family's
model, frame size, normalisation, prompt layout (timestamp text per frame group) and vision tower, for ours
and for transformers' own forward in the same process. Schema and accounting, not timings."""
import json
from types import SimpleNamespace

import pytest

from cli_runner import bench_ok
from omnivideo.bench.ingest.e2e import STAMP_TOKENS, prefix_ids
from omnivideo.bench.ingest.ingest import SMALL, IngestBench, with_family
from omnivideo.engine.family import family_named
from omnivideo.errors import ConfigError


def test_small_run_at_qwen3_vl_shapes(tmp_path):
    bench_ok("ingest", "--small", "--family", "qwen3_vl", "--out", tmp_path)
    result = json.loads((tmp_path / "ingest.json").read_text())
    small = with_family(SMALL, "qwen3_vl")
    assert result["model"] == {"id": "random-tiny-qwen3-vl", "family": "qwen3_vl", "quantization": "none",
                               "vision_depth": 3, "deepstack_layers": 2}
    assert result["config"]["frame_size"] == 64 and result["tokens_per_group"] == (64 // 32) ** 2
    assert result["vision_attention"] == {"ours": "omnivideo_vision", "hf": "sdpa"}
    rows = {(r["tokens"], r["variant"]): r for r in result["results"]}
    assert set(rows) == {(n, v) for n in small.tokens for v in ("ours_dense", "ours_balanced", "hf_generate")}
    for (n, _), row in rows.items():
        assert "error" not in row, row
        assert row["frames"] == 2 * n // result["tokens_per_group"]
    modes = {e["mode"]: e for e in result["e2e"]}
    assert set(modes) == {"pipelined", "sequential"}
    assert modes["pipelined"]["visual_tokens"] == modes["sequential"]["visual_tokens"] > 0
    assert all(side % 32 == 0 for side in modes["pipelined"]["frame_size"])      # Qwen3-VL's resize factor
    report = (tmp_path / "report.md").read_text()
    assert f"each after {STAMP_TOKENS} timestamp-text tokens" in report and "issue 19" in report


def test_qwen3_vl_prefix_has_one_timestamp_and_wrapper_per_group():
    config = SimpleNamespace(vision_start_token_id=7, vision_end_token_id=8)
    view = SimpleNamespace(model=SimpleNamespace(config=config), video_pad_id=9, family=family_named("qwen3_vl"))
    ids = prefix_ids(view, visual_tokens=12, tokens_per_group=4)
    assert ids.count(7) == ids.count(8) == 3 and ids.count(9) == 12
    first = ids.index(7)
    assert ids[first - STAMP_TOKENS:first] == [101] * STAMP_TOKENS and ids[first + 1:first + 5] == [9] * 4
    qwen25 = SimpleNamespace(model=view.model, video_pad_id=9, family=family_named("qwen2_5_vl"))
    assert prefix_ids(qwen25, visual_tokens=12).count(7) == 1                     # one wrapper, no time text


def test_family_sizes_and_frame_sizes():
    assert with_family(IngestBench(), "qwen3_vl").size == "qwen3-vl-8b"
    assert with_family(IngestBench(), "qwen3_vl").frame_size == 512               # 256 tokens per group, as 448
    assert with_family(IngestBench(), "qwen2_5_vl") == IngestBench()
    with pytest.raises(ConfigError, match="not a qwen3_vl model"):
        IngestBench(family="qwen3_vl")
    with pytest.raises(ConfigError, match="multiple of 32"):
        IngestBench(family="qwen3_vl", size="qwen3-vl-8b", frame_size=500)
