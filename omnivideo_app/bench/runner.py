"""The tail every benchmark's `main` shares: re-render from a saved JSON, or run with the report
rewritten after each measured size (a timeout keeps what finished), then print the markdown.

    return finish(args, bench, run, write_report, report_markdown)
"""
import json
from collections.abc import Callable
from pathlib import Path


def finish(args, bench, run: Callable, write_report: Callable, report_markdown: Callable) -> dict:
    """args: parsed options with `out` and `from_json`; bench: the configured benchmark dataclass."""
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        write_report(result, args.out)
        return result
    result = run(bench, on_progress=lambda partial: write_report(partial, args.out))
    write_report(result, args.out)
    print(report_markdown(result))
    return result


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
