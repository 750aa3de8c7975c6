"""The loss curve of a run: `loss_curve.json` (every logged step, every evaluation) and `loss_curve.png`.

history rows: {"step", "loss", "lr", "kinds": {kind: mean answer loss}, "s_per_step"} and, at
evaluations, {"step", "eval": report}. The PNG shows the training loss (raw and smoothed) per kind
and the held-out accuracy per kind on a second axis.

    write_curve(out_dir, history, title="stage A")
"""
import json
import os
from pathlib import Path


def _smooth(values: list[float], alpha: float = 0.05) -> list[float]:
    out, acc = [], None
    for v in values:
        acc = v if acc is None else (1 - alpha) * acc + alpha * v
        out.append(acc)
    return out


def write_curve(out_dir: str | os.PathLike, history: list[dict], title: str = "") -> tuple[Path, Path]:
    """Write loss_curve.json and loss_curve.png under `out_dir` (atomically); return both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / "loss_curve.json", out_dir / "loss_curve.png"
    tmp = json_path.with_name(".loss_curve.json.tmp")
    tmp.write_text(json.dumps(history))
    os.replace(tmp, json_path)

    train = [r for r in history if "loss" in r]
    evals = [r for r in history if "eval" in r]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    if train:
        steps = [r["step"] for r in train]
        ax.plot(steps, [r["loss"] for r in train], color="0.8", lw=0.8, label="loss")
        ax.plot(steps, _smooth([r["loss"] for r in train]), color="k", lw=1.5, label="loss (smoothed)")
        kinds = sorted({k for r in train for k in r.get("kinds", {})})
        for kind in kinds:
            pts = [(r["step"], r["kinds"][kind]) for r in train if kind in r.get("kinds", {})]
            ax.plot([p[0] for p in pts], _smooth([p[1] for p in pts]), lw=1, label=f"{kind} (smoothed)")
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="answer cross-entropy", title=f"training loss {title}".strip())
    ax.legend(fontsize=8)
    for kind in sorted({k for r in evals for k in r["eval"]["kinds"]}):
        pts = [(r["step"], r["eval"]["kinds"][kind]["accuracy"]) for r in evals if kind in r["eval"]["kinds"]]
        ax2.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=kind)
    ax2.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1.02), title="held-out accuracy per kind")
    if evals:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp_png = png_path.with_name(".loss_curve.tmp.png")
    fig.savefig(tmp_png, dpi=110)
    plt.close(fig)
    os.replace(tmp_png, png_path)
    return json_path, png_path
