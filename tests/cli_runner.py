"""Run the real command line in-process (click's runner over the same group `omnivideo` installs)."""
from click.testing import CliRunner


def run_cli(*args: str):
    """Invoke `omnivideo ARGS...`; returns click's Result (exit_code, stdout, stderr)."""
    from omnivideo.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def bench_ok(*args: str):
    """`omnivideo bench ARGS...`, which must succeed."""
    result = run_cli("bench", *args)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr[-2000:]}"
    return result
