"""accuracy.json, report.md and accuracy.png for `bench accuracy` (`omnivideo.bench.accuracy.harness.run`).

    write_report(result, Path("docs/benchmarks/accuracy/dense"))
"""
from pathlib import Path

from omnivideo.bench.runner import write_outputs


def write_report(result: dict, out_dir: Path) -> None:
    write_outputs(result, out_dir, "accuracy.json", report_markdown(result),
                  lambda: plot(result, out_dir / "accuracy.png"))


def _table(groups: dict) -> list[str]:
    return ["| group | questions | correct | accuracy |", "|---|---|---|---|"] + [
        f"| {name} | {g['n']} | {g['correct']} | {100 * g['accuracy']:.1f}% |" for name, g in groups.items()]


def report_markdown(result: dict) -> str:
    s, summary = result["settings"], result.get("summary") or {}
    linears = s.get("prefill_linears", "bf16")   # results written before the setting existed ran bf16
    lines = [f"# Accuracy: {s['model']}, attention {s['attention']}, gamma_decode {s['gamma_decode']}, "
             f"{linears} prefill linears", "",
             f"Questions: `{s['questions']}` ({summary.get('n', 0)} asked{'' if result.get('complete') else ', partial'}); "
             f"device {result.get('device', '?')}, model revision {result.get('model_revision', '?')}; sampling fps "
             f"{s['fps']}, max frames {s['max_frames']}; greedy, at most {s['max_new_tokens']} new tokens; "
             f"{result['date']}. Every question is a fresh first turn through the app's `ask` path (the "
             "video's first question ingests it, later ones load its stored prefix).", ""]
    if summary.get("n"):
        ttft = summary["ttft_s"]
        lines += [f"**Overall: {100 * summary['accuracy']:.1f}%** of {summary['n']}; mean TTFT cold "
                  f"{ttft['cold_mean']} s, warm {ttft['warm_mean']} s.", "", "## By kind", "",
                  *_table(summary["by_kind"]), "", "## By length (visual tokens)", "", *_table(summary["by_bucket"]),
                  "", "## By kind and length", "", *_table(summary["by_kind_bucket"]), "", "![accuracy](accuracy.png)"]
    wrong = [r for r in result["rows"] if not r["correct"]][:12]
    if wrong:
        lines += ["", "## Some wrong answers", "", "| id | kind | tokens | question | expected | reply |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['id']} | {r['kind']} | {r['visual_tokens']} | {r['question']} | {r['expected']} | "
                  f"{r['reply'].strip()[:60]} |" for r in wrong]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = (result.get("summary") or {}).get("by_kind_bucket") or {}
    kinds = sorted({k.split(" ")[0] for k in by})
    buckets = sorted({k.split(" ")[1] for k in by}, key=lambda b: (b[0] == ">", int(b.strip("<=>K"))))
    fig, ax = plt.subplots(figsize=(7, 3.4))
    width = 0.8 / max(1, len(buckets))
    for j, b in enumerate(buckets):
        values = [100 * by.get(f"{k} {b}", {}).get("accuracy", float("nan")) for k in kinds]
        ax.bar([i + j * width for i in range(len(kinds))], values, width, label=b)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(kinds))], kinds)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    s = result["settings"]
    ax.set_title(f"{s['model']}, {s['attention']}, gamma_decode {s['gamma_decode']}")
    ax.legend(title="visual tokens", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)   # the report is rewritten after every question
