"""JSON, markdown report and plot of the end-to-end prefill benchmark (`omnivideo.bench.prefill.e2e`).

    write_e2e_report(result, Path("docs/benchmarks/prefill"))   # -> e2e.json, e2e.md, e2e.png

Written next to the kernel-level report (report.md, results.json, speedup.png), which it leaves alone.
"""
import json
from pathlib import Path


def _label(n: int) -> str:
    return f"{n // 1024}K" if n >= 1024 else str(n)


def _by_name(entry: dict) -> dict:
    return {v["name"]: v for v in entry["variants"] if "error" not in v}


def _length_table(entry: dict) -> list[str]:
    dense = _by_name(entry).get("dense")
    lines = ["| variant | why | kept | prefill s | attention s | linear + rest s | prefill vs dense | "
             "attention vs dense | peak GiB |", "|---|---|---|---|---|---|---|---|---|"]
    for v in entry["variants"]:
        if "error" in v:
            lines.append(f"| {v['name']} | {v['why']} | failed: {v['error'][:100]} | | | | | | |")
            continue
        kept = v.get("sparse", {}).get("mean_density")
        vs = f"{dense['prefill_s'] / v['prefill_s']:.2f}x" if dense else "-"
        att = f"{dense['attention_s'] / v['attention_s']:.2f}x" if dense and v["attention_s"] > 0 else "-"
        lines.append(f"| {v['name']} | {v['why']} | {'-' if kept is None else f'{kept:.1%}'} | "
                     f"{v['prefill_s']:.3f} | {v['attention_s']:.3f} | {v['linear_s']:.3f} | {vs} | {att} | "
                     f"{v.get('peak_gb', float('nan')):.1f} |")
    return lines


def _profile(entry: dict, result: dict) -> list[str]:
    """Where the dense prefill's time goes, in words and rates."""
    by = _by_name(entry)
    dense = by.get("dense")
    if dense is None:
        return []
    fl = entry["flops"]
    share = dense["attention_s"] / dense["prefill_s"]
    lines = [f"- Vision tower (once, every variant shares it): {entry['vision_s']:.2f} s.",
             f"- Dense prefill {dense['prefill_s']:.2f} s: attention {dense['attention_s']:.2f} s ({share:.0%}, "
             f"{fl['attention'] / dense['attention_s'] / 1e12:.0f} TFLOP/s causal), linear + rest "
             f"{dense['linear_s']:.2f} s ({fl['linear'] / dense['linear_s'] / 1e12:.0f} TFLOP/s over the "
             "decoder linears' matmul FLOPs; NF4 weights are dequantized once per layer-major round)."]
    chunks = -(-entry["prefix_tokens"] // result["config"]["chunk_size"])
    if result.get("nf4_dequant_s"):
        one = result["nf4_dequant_s"]
        lines.append(f"- NF4: one dequantization of every decoder weight takes {one * 1e3:.0f} ms. Chunk by chunk, "
                     f"bitsandbytes does it in each of the {chunks} chunks' forwards (~{one * chunks:.2f} s); the "
                     "layer-major rounds do it once per round.")
    if "dense-by-chunk" in by:
        before = by["dense-by-chunk"]
        lines.append(f"- Rounds vs chunk by chunk (dense): prefill {before['prefill_s']:.2f} s -> {dense['prefill_s']:.2f} s "
                     f"({before['prefill_s'] / dense['prefill_s']:.2f}x), linear + rest {before['linear_s']:.2f} s -> "
                     f"{dense['linear_s']:.2f} s; peak {before.get('peak_gb', float('nan')):.1f} -> "
                     f"{dense.get('peak_gb', float('nan')):.1f} GiB.")
    return lines


def _targets(result: dict) -> list[str]:
    lines = ["| target | goal | measured | met | attention alone | incl. vision | pro-rata bound |",
             "|---|---|---|---|---|---|---|"]
    for t in result["acceptance"]:
        met = "yes" if t["met"] else f"**no** (short by {t['short_by']:.0%})"
        lines.append(f"| {t['target']} | {t['goal']}x | {t['value']:.2f}x | {met} | {t['attention_only']:.2f}x | "
                     f"{t['with_vision']:.2f}x | {t['pro_rata_bound']:.2f}x |")
    return lines


def _misses(result: dict) -> list[str]:
    """For each missed target: by how much, and whether the attention kernel or the linear layers are
    the limit (from the measured split)."""
    out = []
    for t in (t for t in result["acceptance"] if not t["met"]):
        head = (f"- **{t['target']}: {t['value']:.2f}x, {t['short_by']:.0%} short of {t['goal']}x.** Attention "
                f"alone: {t['attention_only']:.2f}x at {t['kept']:.0%} kept (pro rata {1 / t['kept']:.2f}x). ")
        if t["pro_rata_bound"] < t["goal"]:
            out.append(head + f"Even a sparse attention costing exactly its kept share would give "
                       f"{t['pro_rata_bound']:.2f}x: the linear layers (NF4 projections and MLP) dominate the "
                       "dense prefill, so the goal needs a faster linear part (bf16/FP8 weights instead of a "
                       "per-chunk NF4 dequantization, larger chunks) or sparser attention, not a faster kernel.")
        else:
            out.append(head + f"A sparse attention costing exactly its kept share would give {t['pro_rata_bound']:.2f}x, "
                       f"barely above the goal: the linear layers (NF4 projections and MLP, the same in every "
                       f"variant) are most of the dense prefill. Attention alone reaches {t['attention_only']:.2f}x "
                       f"instead of {1 / t['kept']:.2f}x because our block-sparse kernel runs at about 70% of "
                       "cuDNN's throughput (dense rows above: Triton over every block vs split-cudnn), and the "
                       "estimate plus list building cost about 0.45 ms per chunk call. Closing it needs both: a "
                       "kernel at cuDNN's rate (FlashAttention-3-style warp specialisation on Hopper) and a faster "
                       "linear part (FP8 or bf16 weights instead of NF4 dequantization).")
    return out


def report_markdown(result: dict) -> str:
    cfg, v = result["config"], result["versions"]
    lines = ["# OmniSparse prefill end to end (real-size model)", "",
             f"Device: {result['device']}; torch {v['torch']}, transformers {v['transformers']}, triton "
             f"{v['triton']}. Model: {result['model']['id']} (language model quantization: "
             f"{result['model']['quantization']}, "
             f"{'32-block' if cfg['full_vision'] else 'reduced'} vision tower, random weights). Prefill chunks of "
             f"{cfg['chunk_size']} tokens, blocks of {cfg['block_size']}, local window {cfg['window']}; "
             f"{cfg['repeats']} runs per variant, the last reported. Dense backend for chunks with a past: "
             f"{result.get('dense_backend') or '-'}."
             + ("" if result.get("complete") else " **Partial run.**"), "",
             "Generated by `omnivideo bench prefill-e2e` (module docstring: method). "
             "Attention = GPU time between CUDA events recorded around every call of our attention "
             "function (no added syncs); linear + rest = prefill - attention. Random weights give flat "
             "attention, so the sparse variants force their density (bench-only `force_density`); "
             "'kept' is the measured share of causal blocks over all chunks.", "",
             "## Targets (language-model prefill, dense / sparse, same engine and process)", ""]
    lines += _targets(result)
    lines += ["", "Pro-rata bound = dense prefill / (dense linear + dense attention x kept): the most any "
              "attention kernel at that density could give while the linear layers stay as they are.", ""]
    lines += _misses(result) + [""]
    if result.get("dense_layer"):
        lines += ["## Dense attention of one layer over the chunked prefill", "",
                  "Milliseconds for every chunk of one layer (Qwen2.5-VL-7B heads, bf16, the model's "
                  "layouts), per backend of `omnivideo/engine/attention.py`; 'one causal call' is a single SDPA "
                  "call over the whole prefix (what chunking should not lose), 'Triton' our block-sparse "
                  "kernel over every causal block.", ""]
        # split-flash: measured in the committed run (then dropped from the engine); "-" in later ones
        keys = ["one_call_causal_sdpa_ms", "mask", "split-cudnn", "split-flash", "lower-right", "auto",
                "triton_all_blocks"]
        lines += ["| length | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for row in result["dense_layer"]:
            if "error" in row:
                lines.append(f"| {_label(row['length'])} | failed: {row['error'][:100]} |")
                continue
            cells = [f"{row[k]:.2f}" if isinstance(row.get(k), float) else str(row.get(k, "-"))[:60] for k in keys]
            lines.append(f"| {_label(row['length'])} | " + " | ".join(cells) + " |")
        lines.append("")
    for entry in result["lengths"]:
        lines += [f"## {_label(entry['length'])} visual tokens ({entry['prefix_tokens']} prefix tokens)", ""]
        lines += _length_table(entry) + [""] + _profile(entry, result) + [""]
    if result.get("workload_densities"):
        lines += ["Workload densities (kernel bench, structured workload at 32K): "
                  + ", ".join(f"{k} {d:.0%}" for k, d in result["workload_densities"].items()) + ".", ""]
    lines += ["![prefill time by part](e2e.png)", ""]
    return "\n".join(lines)


def write_plot(result: dict, path: Path) -> None:
    """Stacked bars per length and variant: linear + rest, attention; vision as its own bar."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    entries = result["lengths"]
    fig, axes = plt.subplots(1, max(1, len(entries)), figsize=(5.5 * max(1, len(entries)), 4.2), squeeze=False)
    for ax, entry in zip(axes[0], entries):
        ok = [v for v in entry["variants"] if "error" not in v]
        names = ["vision"] + [v["name"] for v in ok]
        linear = [0.0] + [v["linear_s"] for v in ok]
        attention = [0.0] + [v["attention_s"] for v in ok]
        xs = range(len(names))
        ax.bar(xs, [entry["vision_s"]] + [0.0] * len(ok), color="tab:gray", label="vision (once)")
        ax.bar(xs, linear, color="tab:blue", label="linear + rest")
        ax.bar(xs, attention, bottom=linear, color="tab:orange", label="attention")
        ax.set_xticks(list(xs), names, rotation=35, ha="right", fontsize=8)
        ax.set(ylabel="seconds", title=f"{_label(entry['length'])} visual tokens, {result['device']}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_e2e_report(result: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "e2e.json").write_text(json.dumps(result, indent=1))
    (out_dir / "e2e.md").write_text(report_markdown(result))
    if result["lengths"]:
        write_plot(result, out_dir / "e2e.png")
