"""What every benchmark shares: its click command class and options, the run-and-report tail, the
output writer and the byte formatter.

    @bench_command("decode", variadic=("contexts",))
    @out_option("docs/benchmarks/decode")
    @from_json_option("decode.json")
    def decode(out, from_json, ...):
        return finish(out, from_json, bench, run, write_report, report_markdown)
"""
import json
from collections.abc import Callable
from pathlib import Path

import click


class BenchCommand(click.Command):
    """A click command whose repeatable options also take several values after one flag
    (`--contexts 8192 32768`, as the benchmarks' options always did), besides `--contexts 8192 --contexts 32768`."""

    def parse_args(self, ctx, args):
        variadic = {o for p in self.params if isinstance(p, click.Option) and p.multiple for o in p.opts}
        spread, i = [], 0
        while i < len(args):
            spread.append(args[i])
            if args[i] in variadic and i + 1 < len(args):
                spread.append(args[i + 1])
                i += 2
                while i < len(args) and not args[i].startswith("-"):
                    spread += [spread[-2], args[i]]
                    i += 1
                continue
            i += 1
        return super().parse_args(ctx, spread)


def bench_command(name: str, **kwargs):
    return click.command(name, cls=BenchCommand, **kwargs)


def out_option(default: str):
    return click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path(default),
                        show_default=True, help="Folder for the JSON, report.md and the plot.")


def from_json_option(name: str):
    return click.option("--from-json", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                        help=f"Re-render report and plot from a saved {name}; run nothing.")


def small_option(what: str = "tiny model on CPU, small sizes"):
    return click.option("--small", is_flag=True, help=f"{what} (schema check, no real timings).")


def finish(out: Path, from_json: Path | None, bench, run: Callable, write_report: Callable,
           report_markdown: Callable) -> dict:
    """Re-render from a saved JSON, or run `bench` with the report rewritten after each measured size (a
    timeout keeps what finished), then print the markdown."""
    if from_json:
        result = json.loads(from_json.read_text())
        write_report(result, out)
        return result
    result = run(bench, on_progress=lambda partial: write_report(partial, out))
    write_report(result, out)
    click.echo(report_markdown(result))
    return result


def print_targets(targets: list[dict], digits: int = 3) -> None:
    """One MET / MISS line per acceptance target a benchmark computed."""
    for t in targets:
        click.echo(f"{'MET ' if t['met'] else 'MISS'} {t['target']}: {t['value']:.{digits}f} (goal {t['goal']})")


def write_outputs(result: dict, out_dir: Path, json_name: str, markdown: str, plots: Callable[[], None]) -> None:
    """<out_dir>/<json_name>, report.md, then `plots()`. The GPU box may have no matplotlib: then the JSON
    and report are still written and `--from-json` re-renders the plots later."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / json_name).write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "report.md").write_text(markdown)
    try:
        plots()
    except ImportError as e:
        print(f"no plot written ({e})")


def format_bytes(x: int | None) -> str:
    """GiB with 2 decimals; small sizes (the --small runs) in MiB / KiB so they do not read as 0."""
    if x is None:
        return "-"
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        if x >= 1 << shift:
            return f"{x / 2 ** shift:.2f} {unit}"
    return f"{x / 1024:.1f} KiB"
