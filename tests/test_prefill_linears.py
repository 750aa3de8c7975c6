"""`--prefill-linears` end to end: the KV made with FP8 linears is another cache entry, and `ask --json` says
which linears made the prefix (tiny model, real files, the CLI in a subprocess)."""
from conftest import make_clip
from test_persistence import _ask, _cli, home  # noqa: F401  (home is a fixture)


def test_fp8_linears_are_another_cache_entry_and_reported(home, tmp_path):
    video = make_clip(tmp_path / "v.mp4", seconds=2, seed=3)
    bf16 = _ask(home, video)
    fp8 = _ask(home, video, "What happens?", "--prefill-linears", "fp8")
    assert bf16["cache_hit"] is False and fp8["cache_hit"] is False      # same video, other linears: a miss
    assert fp8["entry_id"] != bf16["entry_id"]
    assert bf16["linears"] == {"prefill": "bf16", "requested": "bf16", "why": "bf16 linears (the default)"}
    assert fp8["linears"]["prefill"] == fp8["linears"]["requested"] == "fp8"
    again = _ask(home, video, "What happens?", "--prefill-linears", "fp8")
    assert again["cache_hit"] is True and again["entry_id"] == fp8["entry_id"] and again["answer"] == fp8["answer"]
    assert _ask(home, video)["entry_id"] == bf16["entry_id"]            # the bf16 entry is still there


def test_unknown_setting_is_one_error_line(home, tmp_path):
    out = _cli(["ask", str(tmp_path / "none.mp4"), "q", "--model", "tiny", "--prefill-linears", "int4"], home)
    assert out.returncode == 2 and "prefill-linears" in out.stderr
