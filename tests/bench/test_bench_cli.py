"""The `bench` command group: options as the benchmarks always took them, and bad settings as one line."""
import click
import pytest
from click.testing import CliRunner

from cli_runner import run_cli
from omnivideo.bench.runner import BenchCommand


def test_repeatable_options_take_several_values_after_one_flag():
    seen = {}

    @click.command(cls=BenchCommand)
    @click.option("--contexts", type=int, multiple=True)
    @click.option("--small", is_flag=True)
    def cmd(contexts, small):
        seen.update(contexts=contexts, small=small)

    for args in (["--contexts", "8192", "32768", "--small"], ["--contexts", "8192", "--contexts", "32768", "--small"]):
        assert CliRunner().invoke(cmd, args).exit_code == 0
        assert seen == {"contexts": (8192, 32768), "small": True}


@pytest.mark.parametrize("args, message", [
    (["decode", "--contexts", "10"], "contexts must be >= 64"),
    (["ingest", "--tokens", "101", "--small"], "multiples of"),
    (["vision", "--tokens", "100", "--small"], "multiples of"),
    (["slimming", "--frames", "0"], "must be >= 1"),
    (["cache", "--repeats", "0"], "repeats >= 1"),
])
def test_a_bad_setting_is_one_error_line_before_any_work(args, message, tmp_path):
    result = run_cli("bench", *args, "--out", tmp_path)   # a setting that slipped through writes nowhere that matters
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error:") and message in result.stderr and result.stderr.count("\n") == 1
