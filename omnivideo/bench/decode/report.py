"""decode.json, report.md and decode.png for the decode benchmark (`omnivideo.bench.decode.decode.run`).

The plot needs matplotlib; without it the JSON and report are still written (and
`omnivideo bench decode --from-json decode.json` re-renders later).

    write_report(result, Path("docs/benchmarks/decode"))
"""
from pathlib import Path

from omnivideo.bench.runner import format_bytes as _gb, write_outputs


def write_report(result: dict, out_dir: Path) -> None:
    write_outputs(result, out_dir, "decode.json", report_markdown(result), lambda: plot(result, out_dir / "decode.png"))


def report_markdown(result: dict) -> str:
    m, bw, c = result["model"], result["bandwidth"], result["config"]
    lines = [
        "# Decode speed at long context", "",
        f"Model: {m['id']} ({m['quantization']}; random weights and random KV: speed only, answers are noise). "
        f"Device: {result['device']}; torch {result['torch']}, transformers {result['transformers']}. "
        f"Each variant: {c['question_tokens']}-token question prefilled over the context (KV in host memory, "
        f"streamed per layer), then {c['new_tokens']} timed greedy tokens; ms/token = median interval "
        f"between streamed tokens. Run took {result.get('seconds', '(partial result)')} s.", "",
        f"Weights read per token: {_gb(m['weight_bytes_per_token'])}; KV: {_gb(m['kv_bytes_per_token'])} per token. "
        f"Bandwidth: {bw['measured_copy_GBps']} GB/s measured (device copy), nominal "
        f"{bw['nominal_GBps'] or '-'} GB/s. Floor = (weights + KV read) / measured bandwidth.", "",
        "| context | variant | ms/token | floor ms | x floor | kept visual | KV read | KV on GPU "
        "| peak alloc | graph | TTFT s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["results"]:
        if "error" in r:
            lines.append(f"| {r['context']} | {r['variant']} | error: {r['error']} |" + " |" * 8)
            continue
        lines.append(f"| {r['context']} | {r['variant']} | {r['ms_per_token']} | {r['floor_ms']} | {r['x_floor']} | "
                     f"{100 * r['kept_visual_share']:.0f}% | {_gb(r['kv_read_bytes'])} | {_gb(r['kv_gpu_bytes'])} | "
                     f"{_gb(r['peak_allocated_bytes'])} | {'yes' if r['graph'] else 'no'} | {r['ttft_s']} |")
    acc = result["acceptance"]
    lines += ["", "Acceptance (issue 5; issue 19 at Qwen3-VL-8B shapes: x_floor <= 2.5 and >= 10x HF at 32K): "
              + (", ".join(f"{k}: {v}" for k, v in acc.items()) or "not applicable (contexts 32K/64K not run)"), ""]
    if bw.get("nominal_GBps"):  # the floor moves with the measured copy bandwidth: give the stricter one too
        scale = bw["measured_copy_GBps"] / bw["nominal_GBps"]
        dense = [f"{r['context'] // 1024}K {r['ms_per_token'] / (r['floor_ms'] * scale):.2f}x"
                 for r in result["results"] if r.get("variant") == "ours_dense" and "error" not in r]
        lines += ["Against the nominal bandwidth instead of the measured copy (a stricter floor), ours_dense is at "
                  + ", ".join(dense) + " the floor.", ""]
    b = result.get("breakdown")
    if b:
        dense = next((r for r in result["results"] if r["context"] == b["context"] and r["variant"] == "ours_dense"),
                     None)
        nf4, head = b["nf4_matmuls"], b["lm_head"]
        lines += [f"Where the time goes at {b['context']} tokens (each piece captured in a CUDA graph and timed "
                  f"alone): the {nf4['count']} NF4 matmuls take {nf4['ms']} ms ({_gb(nf4['bytes'])} at "
                  f"{nf4['GBps']} GB/s), lm_head {head['ms']} ms ({head['GBps']} GB/s); the whole graph step "
                  f"takes {dense['ms_per_token'] if dense else '-'} ms, so the rest (norms, RoPE, residuals, "
                  f"decode attention, tail appends, sampling and the host round trip) takes "
                  f"{round(dense['ms_per_token'] - nf4['ms'] - head['ms'], 3) if dense else '-'} ms. The same "
                  f"step without a CUDA graph: {b['eager_ms_per_token']} ms/token.", ""]
    s = result.get("stream")
    if s:
        if "error" in s:
            lines.append(f"Host-memory prefix of {s['context']} tokens: **{s['error']}**.")
        else:
            lines += [f"Host-memory prefix of {s['context']} tokens ({_gb(s['host_kv_bytes'])} of KV in pinned "
                      f"host memory), GPU cap {_gb(s['cap_bytes'])}, gamma_decode {s['gamma_decode']}: "
                      f"question answered in {s['question_s']} s (TTFT {s['ttft_s']} s, then {s['ms_per_token']} "
                      f"ms/token); {s['offloaded_layers']} layers' slimmed KV staged from host memory per step "
                      f"(device budget {_gb(s['device_kv_budget_bytes'])}). Peak GPU memory allocated: "
                      f"{_gb(s['peak_allocated_prefill_bytes'])} during the question prefill (streamed), "
                      f"{_gb(s['peak_allocated_bytes'])} while decoding (reserved "
                      f"{_gb(s['peak_reserved_decode_bytes'])}). Host setup (pinned allocation and fill): "
                      f"{s['host_setup_s']} s."]
    lines += ["", "Notes: `kept visual` below 100% comes from random weights attending almost uniformly (about "
              "gamma_decode of the visual mass needs about that share of tokens); it sets the KV size the slimmed "
              "rows are timed at, not a quality claim (see docs/benchmarks/slimming/). HF `generate` appends to a "
              "DynamicCache by concatenation and runs eager Python per layer; its KV is on the GPU in full."]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    """ms/token against context (log-log) per variant, with the dense bandwidth floor dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["results"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for variant in dict.fromkeys(r["variant"] for r in rows):
        pts = [(r["context"], r["ms_per_token"]) for r in rows if r["variant"] == variant and "error" not in r]
        if pts:
            ax.plot(*zip(*pts), "o-", label=variant)
    floor = [(r["context"], r["floor_ms"]) for r in rows if r["variant"] == "ours_dense"]
    if floor:
        ax.plot(*zip(*floor), "k--", label="bandwidth floor (dense KV)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("ms per token")
    ax.set_title(f"Decode, {result['model']['id']} ({result['model']['quantization']}), {result['device']}",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
