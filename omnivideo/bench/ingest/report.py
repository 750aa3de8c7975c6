"""ingest.json, report.md, ingest.png and ingest_timeline.png for `bench ingest` (`omnivideo.bench.ingest.ingest.run`).

The plots need matplotlib; without it the JSON and report are still written
(`omnivideo bench ingest --from-json ingest.json --out DIR` re-renders later).
"""
from pathlib import Path

from omnivideo.bench.ingest.e2e import STAMP_TOKENS
from omnivideo.bench.runner import write_outputs

STAGES = ("preprocess", "vision", "prefill", "first_token")
COLORS = {"decode": "tab:gray", "preprocess": "tab:olive", "vision": "tab:blue", "prefill": "tab:orange",
          "first_token": "tab:red"}


def write_report(result: dict, out_dir: Path) -> None:
    def plots():
        plot_stages(result, out_dir / "ingest.png")
        if any("timeline" in e for e in result.get("e2e", [])):
            plot_timeline(result, out_dir / "ingest_timeline.png")

    write_outputs(result, out_dir, "ingest.json", report_markdown(result), plots)


def _gb(x) -> str:
    if x is None:
        return "-"
    return f"{x / 2 ** 30:.2f} GiB" if x >= 1 << 30 else f"{x / 2 ** 20:.1f} MiB"


def _stamps(result: dict) -> str:
    """Qwen3-VL's prompt: each group after its timestamp text (the older results have no family)."""
    m = result["model"]
    if m.get("family") != "qwen3_vl":
        return ""
    return (f", each after {STAMP_TOKENS} timestamp-text tokens as Qwen3VLProcessor writes them; "
            f"{m.get('deepstack_layers')} DeepStack layers")


def report_markdown(result: dict) -> str:
    c, m = result["config"], result["model"]
    va = result.get("vision_attention", {})
    lines = [
        "# Cold ingest: time to first token by stage", "",
        f"Model: {m['id']} ({m['quantization']} language model, {m['vision_depth']}-block vision tower; random "
        f"weights: speed only). Device: {result['device']}; torch {result['torch']}, transformers "
        f"{result['transformers']}. Frames: synthetic {c['frame_size']}x{c['frame_size']} uint8, already decoded "
        f"({result['tokens_per_group']} visual tokens per 2-frame group{_stamps(result)}), the same array for "
        f"every variant; a "
        f"{c['question_tokens']}-token question; TTFT = from decoded frames to the first answer token. Ours: "
        f"prefill chunks of {c['chunk_size']} tokens, vision chunks of {c['vision_chunk_groups']} frame groups, "
        f"vision attention {va.get('ours', '-')}; baseline `generate` with sdpa (vision {va.get('hf', '-')}) after "
        f"our CPU processor. Median of {c['repeats']} (ours) / {c['hf_repeats']} (baseline) runs after a warm-up "
        f"(ours: per size; baseline: at the first size). Run took {result.get('seconds', '(partial result)')} s.", "",
        "| tokens | variant | TTFT s | preprocess | vision | LLM prefill | first token | peak GPU alloc | sparse |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        if "error" in r:
            lines.append(f"| {r['tokens']} | {r['variant']} | error: {r['error']} |" + " |" * 6)
            continue
        st, sp = r["stages_s"], r.get("sparse")
        sparse = f"density {sp['mean_density']}, {sp['dense_fallbacks']}/{sp['calls']} dense" if sp else "-"
        lines.append(f"| {r['tokens']} | {r['variant']} | {r['ttft_s']} | " + " | ".join(
            str(st[s]) for s in STAGES) + f" | {_gb(r['peak_allocated_bytes'])} | {sparse} |")
    acc = result.get("acceptance") or {}
    target = ("issue 19 for Qwen3-VL: ge_3x_32k" if m.get("family") == "qwen3_vl" else "issue 7") + " at balanced"
    lines += ["", f"Acceptance ({target}; fp8_*: issue 20, FP8 linears at dense): "
              + (", ".join(f"{k}: {v}" for k, v in acc.items()) or "not applicable (32K/64K or the baseline not run)"),
              ""]
    if any(v != "bf16 linears (the default)" for v in result.get("prefill_linears", {}).values()):
        lines += ["Prefill linears: " + "; ".join(f"{k}: {v}" for k, v in result["prefill_linears"].items()), ""]
    lines += ["Stage times are device busy time (CUDA events) for ours and hook-to-hook for the baseline; ours "
              "overlaps preprocessing (worker threads) with the device, so its stages can sum to more than its "
              "TTFT. Random weights attend almost uniformly: `balanced` may fall back to dense in many layers "
              "(the sparse column counts them), so its speed here is a floor for real checkpoints.", ""]
    for e in result.get("e2e", []):
        lines += _e2e_lines(e)
    return "\n".join(lines) + "\n"


def _e2e_lines(e: dict) -> list[str]:
    if "error" in e:
        return [f"End to end ({e.get('video')}): error: {e['error']}", ""]
    busy, share = e["busy_s"], e["share_of_ttft"]
    head = (f"End to end, {e['mode']} ({e['video']}, preset {e['preset']}): {e['frames']} frames at "
            f"{e['frame_size'][0]}x{e['frame_size'][1]}, {e['visual_tokens']} visual tokens; TTFT **{e['ttft_s']} s**, "
            f"peak GPU {_gb(e['peak_allocated_bytes'])}. Decoding ends at {e['decode_end_s']} s; of its "
            f"{e['decode_wall_s']} s, {e['decode_overlapped_with_device_s']} s overlap GPU work.")
    rows = ["", "| stage | busy s (all lanes) | share of TTFT |", "|---|---|---|"]
    rows += [f"| {s} | {busy[s]} | {100 * share[s]:.1f}% |" for s in busy]
    return [head] + rows + [""]


def plot_stages(result: dict, path: Path) -> None:
    """Stacked stage bars per size and variant (left), peak GPU memory (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["results"] if "error" not in r]
    variants = list(dict.fromkeys(r["variant"] for r in result["results"]))
    sizes = list(dict.fromkeys(r["tokens"] for r in result["results"]))
    fig, (ax, mem) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(variants))
    for vi, v in enumerate(variants):
        for si, n in enumerate(sizes):
            r = next((x for x in rows if x["variant"] == v and x["tokens"] == n), None)
            if r is None:
                continue
            bottom, x = 0.0, si + (vi - (len(variants) - 1) / 2) * width
            for s in STAGES:
                ax.bar(x, r["stages_s"][s], width * 0.9, bottom=bottom, color=COLORS[s],
                       label=s if (vi, si) == (0, 0) else None, edgecolor="k", linewidth=0.3)
                bottom += r["stages_s"][s]
            ax.plot([x - width * 0.45, x + width * 0.45], [r["ttft_s"]] * 2, "k-", lw=1.5)
            ax.text(x, bottom, v.replace("ours_", "").replace("hf_generate", "HF"), ha="center", va="bottom",
                    fontsize=6, rotation=90)
    ax.set_xticks(range(len(sizes)), [f"{n // 1024}K" if n >= 1024 else str(n) for n in sizes])
    ax.set_xlabel("visual tokens")
    ax.set_ylabel("seconds (bars: stage busy time; black line: TTFT)")
    ax.legend(fontsize=7)
    for v in variants:
        pts = [(r["tokens"], r["peak_allocated_bytes"] / 2 ** 30) for r in rows
               if r["variant"] == v and r["peak_allocated_bytes"]]
        if pts:
            mem.plot(*zip(*pts), "o-", label=v)
    mem.set_xscale("log", base=2)
    mem.set_xlabel("visual tokens")
    mem.set_ylabel("peak GPU memory allocated (GiB)")
    if mem.lines:
        mem.legend(fontsize=7)
    fig.suptitle(f"Cold TTFT from decoded frames, {result['model']['id']}, {result['device']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_timeline(result: dict, path: Path) -> None:
    """One Gantt row per lane (readers, device) for each end-to-end run, sharing the time axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [e for e in result["e2e"] if "timeline" in e]
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 1.2 + 0.9 * sum(len({x["lane"] for x in e["timeline"]})
                                                                          for e in runs) / len(runs) * len(runs)),
                             sharex=True, squeeze=False)
    for ax, e in zip(axes[:, 0], runs):
        lanes = sorted({x["lane"] for x in e["timeline"]}, key=lambda s: (s == "device", s))
        seen = set()
        for x in e["timeline"]:
            y = lanes.index(x["lane"])
            ax.barh(y, x["end_s"] - x["start_s"], left=x["start_s"], height=0.7, color=COLORS.get(x["stage"], "k"),
                    label=x["stage"] if x["stage"] not in seen else None, edgecolor="k", linewidth=0.2)
            seen.add(x["stage"])
        ax.axvline(e["ttft_s"], color="k", ls="--", lw=1)
        ax.set_yticks(range(len(lanes)), lanes, fontsize=7)
        ax.set_title(f"{e['mode']}: TTFT {e['ttft_s']} s ({e['visual_tokens']} visual tokens, {e['frames']} frames)",
                     fontsize=8)
        ax.legend(fontsize=6, loc="lower right", ncol=5)
    axes[-1, 0].set_xlabel("seconds since the ingest started")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
