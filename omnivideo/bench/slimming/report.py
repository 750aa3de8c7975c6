"""Rendering of the decode-slimming benchmark result (`omnivideo.bench.slimming.slimming.run`): JSON,
report.md and a plot, written to one folder.

    write_report(result, Path("docs/benchmarks/slimming"))
"""
import json
from pathlib import Path


def write_report(result: dict, out_dir: Path) -> None:
    """slimming.json, report.md and slimming.png in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "slimming.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "report.md").write_text(report_markdown(result))
    plot(result, out_dir / "slimming.png")


def report_markdown(result: dict) -> str:
    c, head, oracle = result["config"], result["headline"], result["oracle"]
    gamma = head["gamma_decode"]
    cover = sorted(share for layer in result["layers"] for share in layer["head_cover_share"])
    captured = result.get("captured", False)
    shape = (f"{result['visual_tokens']} visual tokens" if captured else
             f"{c['frames']} frame groups x {c['patches']} patches = {result['visual_tokens']} visual tokens")
    lines = [
        f"# Decode KV slimming (mechanism 3) on {'captured Q/K' if captured else 'the structured workload'}", "",
        f"Workload: {result['workload']} ("
        + ("real attention; decode queries over prefix + question, the tail left out: "
           "omnivideo/bench/slimming/captured.py). " if captured else
           "assumptions: the module docstrings; synthetic, not captured Q/K). ")
        + f"Hq {c['num_q_heads']}, Hkv {c['num_kv_heads']}, d {c['head_dim']}, {shape} among "
        f"{result['tokens']} tokens; {c['layers']} layers; {c['observe']} observation rows and {c['decode_queries']} decode "
        f"queries per layer; min_tokens {c['min_tokens']}, pool {c['pool']}; {result['device']}, "
        f"{result['seconds']} s.", "",
        f"**gamma_decode {gamma}: visual KV {head['size_ratio']:.2f}x smaller (target >= {head['target_ratio']}x), "
        f"decode output error {100 * head['error_mean']:.2f}% mean, {100 * head['error_p95']:.2f}% p95 "
        f"(target <= {100 * head['target_error']:.0f}% mean): {'met' if head['met'] else 'NOT met'}.**", "",
        f"Oracle at gamma_decode {gamma} (the same rule applied to the decode queries' own attention, "
        f"which no real system has): {oracle['size_ratio']:.2f}x, {100 * oracle['error_mean']:.2f}% error.", "",
        f"Flatness of the workload: per query head, the share of visual tokens covering {gamma} of its own "
        f"observed visual mass is {_spread(cover)} (min / median / max over heads and layers); a KV head "
        "keeps the union of its group's needs.", "",
        "| gamma_decode | visual KV dense/slim | kept visual share | error mean | error p95 | recall mean "
        "| recall p5 (worst layer) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["sweep"]:
        lines.append(f"| {r['gamma_decode']} | {r['size_ratio']:.2f}x | {100 * r['kept_visual_share']:.1f}% | "
                     f"{100 * r['error_mean']:.2f}% | {100 * r['error_p95']:.2f}% | "
                     f"{100 * r['recall_mean']:.2f}% | {100 * r['recall_p5']:.2f}% |")
    lines += ["", f"Per layer at gamma_decode {gamma}: kept visual tokens per KV head (observation rows, then "
              "oracle), decode mass on visual / text tokens, and the kernel check (pack_kv + Triton decode "
              "kernel vs masked torch, max relative error):", "",
              "| layer | kept per KV head | oracle kept | visual mass | text mass | error mean | kernel check |",
              "|---|---|---|---|---|---|---|"]
    for i, layer in enumerate(result["layers"]):
        g = layer["gammas"][str(gamma)]
        lines.append(f"| {i} | {g['kept_visual_per_head']} | {layer['oracle']['kept_visual_per_head']} | "
                     f"{100 * layer['decode_mass_visual']:.1f}% | {100 * layer['decode_mass_text']:.1f}% | "
                     f"{100 * g['error_mean']:.2f}% | {layer['kernel_check']['max_rel_error_vs_masked_torch']:.1e} |")
    return "\n".join(lines) + "\n"


def _spread(values: list[float]) -> str:
    return " / ".join(f"{100 * v:.0f}%" for v in (values[0], values[len(values) // 2], values[-1]))


def plot(result: dict, path: Path) -> None:
    """Trade-off: mean output error against visual-KV size ratio, one point per gamma_decode; the target
    region (ratio >= target, error <= target) shaded; the oracle as a star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    head, oracle, sweep = result["headline"], result["oracle"], result["sweep"]
    ratios = [r["size_ratio"] for r in sweep]
    errors = [100 * r["error_mean"] for r in sweep]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    x_max = max(ratios + [head["target_ratio"]]) * 1.15
    ax.fill_between([head["target_ratio"], x_max], 0, 100 * head["target_error"], color="tab:green", alpha=0.2,
                    label="target region")
    ax.plot(ratios, errors, "o-", color="tab:blue", label="observation-window selection")
    for r, x, y in zip(sweep, ratios, errors):
        ax.annotate(f"{r['gamma_decode']}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.plot([oracle["size_ratio"]], [100 * oracle["error_mean"]], "*", ms=12, color="tab:orange",
            label=f"oracle at gamma {head['gamma_decode']}")
    ax.set_xlim(0.9, x_max)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("visual KV dense / slimmed (x)")
    ax.set_ylabel("decode output error, mean of queries (%)")
    ax.set_title(f"Per-head decode KV slimming, {result['visual_tokens']} visual tokens\n"
                 "(structured workload; labels: gamma_decode)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
