"""report.md and video_sampling.png for the video sampling benchmark (`omnivideo.bench.video.sampling`)."""
from pathlib import Path

MIB = 2**20


def _plot(result: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs, base = result["runs"], result["baseline"]
    labels = [f"seek\n{r['frames']} frames" for r in runs] + [f"decode through\n{base['frames']} frames"]
    seconds = [r["seconds"] for r in runs] + [base["seconds"]]
    rss = [r["rss_over_baseline_bytes"] / MIB for r in runs] + [base["rss_over_baseline_bytes"] / MIB]
    frames = [r["frames_bytes"] / MIB for r in runs] + [base["frames_bytes"] / MIB]
    colors = ["tab:blue"] * len(runs) + ["tab:gray"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax_t.bar(labels, seconds, color=colors)
    ax_t.set_yscale("log")
    ax_t.set_ylabel("wall time, s (log)")
    ax_t.set_title(f"1 h 1080p H.264: {result['speedup']:.1f}x faster at {base['frames']} frames")
    for i, s in enumerate(seconds):
        ax_t.annotate(f"{s:.1f} s", (i, s), ha="center", va="bottom", fontsize=8)
    ax_m.bar(labels, rss, color=colors, label="peak RSS over the process baseline")
    ax_m.plot(labels, frames, "k_", markersize=30, label="sampled frames (bytes)")
    ax_m.set_ylabel("MiB")
    ax_m.set_title("memory grows with sampled frames, not video length")
    ax_m.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(result: dict, out_dir: Path):
    _plot(result, out_dir / "video_sampling.png")
    v, m = result["video"], result["machine"]
    lines = [
        "# Video sampling benchmark",
        "",
        f"Video: {v['duration_s'] / 60:.0f} min, {v['width']}x{v['height']}, {v['fps']:g} fps, {v['codec']}, "
        f"{v['frame_count']} frames, keyframe every {v['keyint'] or '?'} frames, {v['size_bytes'] / 2**30:.2f} GiB"
        + (" (generated: ffmpeg `testsrc2`, x264 veryfast crf 35, a 60 s segment repeated by stream copy)."
           if v["keyint"] else " (given with --video)."),
        f"Machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}. CPU decoding only.",
        "",
        "Each row is a fresh process: time covers probe + sampling (imports excluded); peak RSS is that",
        "process's `ru_maxrss` (from `os.wait4`), shown also as growth over the RSS after imports.",
        "",
        "The machine is shared: the 1-minute load average before/after each run is shown.",
        "",
        "| method | frames | time (s) | CPU time (s) | load | peak RSS (MiB) | RSS growth (MiB) "
        "| sampled frames (MiB) |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in [*result["runs"], result["baseline"]]:
        load = "/".join(f"{x:.1f}" for x in r["load_avg_1m"])
        lines.append(f"| {r['method']} | {r['frames']} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | {load} | "
                     f"{r['peak_rss_bytes'] / MIB:.0f} | {r['rss_over_baseline_bytes'] / MIB:.0f} | "
                     f"{r['frames_bytes'] / MIB:.1f} |")
    seek = next(r for r in result["runs"] if r["frames"] == result["baseline"]["frames"])
    cpu_ratio = result["baseline"]["cpu_seconds"] / seek["cpu_seconds"]
    lines += ["", f"Speedup at {result['baseline']['frames']} frames: **{result['speedup']:.1f}x** in wall time, "
              f"{cpu_ratio:.1f}x in CPU time; same frames from both methods: {result['same_frames']}.",
              "", "## Targets", ""]
    for t in result["targets"]:
        lines.append(f"- {'MET' if t['met'] else 'MISSED'}: {t['target']} ({t['value']:.2f}, goal {t['goal']:.2f})")
    lines += ["", "![time and memory](video_sampling.png)", ""]
    (out_dir / "report.md").write_text("\n".join(lines))
