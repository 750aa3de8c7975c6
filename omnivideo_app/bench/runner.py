"""The tail every benchmark's `main` shares: re-render from a saved JSON, or run with the report
rewritten after each measured size (a timeout keeps what finished), then print the markdown.

    return finish(args, bench, run, write_report, report_markdown)
"""
import json
from collections.abc import Callable


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
