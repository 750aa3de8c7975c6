"""Kernel-level benchmark of the OmniSparse prefill: speed against SDPA over forced densities, and
fidelity on the structured workload. Writes results.json, report.md and speedup.png to `out_dir`.

    omnivideo bench prefill --out docs/benchmarks/prefill    # on a GPU
    omnivideo bench prefill --small --out /tmp/prefill       # CPU, toy sizes
    omnivideo bench prefill --qk qk.safetensors --out /tmp/qk  # on `bench capture` Q/K

Speed uses random bf16 Q/K/V (their flat attention would make every plan dense, so a bench-only
`force_density` picks each head's top blocks by estimated score until the chunk keeps that share
of causal blocks). Timings: `triton.testing.do_bench` medians on a GPU; one wall-clock run on CPU,
where the Triton interpreter makes them meaningless (the `--small` run checks plumbing only).
With `--qk FILE` (written by `bench capture`), fidelity runs on the captured layers instead of the
structured workload (text query blocks kept dense, as the engine does) and the speed sweep runs
once, at the captured length on the first captured layer's Q/K/V.
"""
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click
import torch

if not torch.cuda.is_available():   # the Triton interpreter must be chosen before kernels are defined
    os.environ.setdefault("TRITON_INTERPRET", "1")

from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention, tuned_configs  # noqa: E402
from omnivideo.kernels.sparse_prefill.estimate import estimate, pool_blocks  # noqa: E402
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams, build_block_lists  # noqa: E402
from omnivideo.bench.prefill.fidelity import (key_recall, oracle_density, output_error,  # noqa: E402
                                          recall_summary)
from omnivideo.bench.prefill.kernels_report import write_report  # noqa: E402
from omnivideo.bench.workload import structured_qk  # noqa: E402
from omnivideo.errors import ConfigError  # noqa: E402

DEFAULT_OUT = Path("docs/benchmarks/prefill")
PRESETS = {"balanced": 0.95, "fast": 0.9}           # gamma of the `--attention` presets
SPEED_TARGETS = ((32768, 0.25, 2.5), (65536, 0.15, 4.0), (131072, 0.10, 6.0))   # length, density, x
ESTIMATE_TARGET = (65536, 0.15, 0.15)               # length, density, estimate / attention time


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Shapes of the kernel bench (Qwen2.5-VL-7B attention: 28 query / 4 KV heads, d 128)."""
    lengths: tuple[int, ...] = (16384, 32768, 65536, 131072)
    densities: tuple[float, ...] = (0.05, 0.1, 0.15, 0.25, 0.35, 0.5)
    hq: int = 28
    hkv: int = 4
    head_dim: int = 128
    dtype: str = "bfloat16"
    block_size: int = 64
    window: int = 512
    fidelity_frames: int = 128
    patches_per_frame: int = 256
    fidelity_layers: int = 4
    recall_rows: int = 256

    def __post_init__(self):
        if self.hq % self.hkv:
            raise ConfigError(f"hq ({self.hq}) must be a multiple of hkv ({self.hkv})")
        if not all(0 < d <= 1 for d in self.densities):
            raise ConfigError(f"densities must be in (0, 1], got {self.densities}")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ConfigError(f"dtype must be bfloat16, float16 or float32, got {self.dtype}")
        if min(self.lengths) < self.block_size:
            raise ConfigError(f"lengths must be >= block_size {self.block_size}, got {self.lengths}")

    def params(self, **overrides) -> SparseParams:
        return SparseParams(block_size=self.block_size, window=self.window, **overrides)


# toy sizes for CPU: fp32 (the interpreter cannot do bf16 math), 16-token blocks so there is sparsity
SMALL = BenchConfig(lengths=(256, 320), densities=(0.3, 0.6), hq=8, hkv=2, head_dim=32, dtype="float32",
                    block_size=16, window=64, fidelity_frames=4, patches_per_frame=64, fidelity_layers=2,
                    recall_rows=64)


def _timer(device: torch.device):
    """fn -> median milliseconds."""
    if device.type == "cuda":
        from triton.testing import do_bench
        return lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median")

    def once(fn) -> float:
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    return once


def _sdpa(q, k, v, scale):
    """Dense causal GQA attention, [H, N, d] layout; the baseline."""
    return torch.nn.functional.scaled_dot_product_attention(
        q[None], k[None], v[None], is_causal=True, scale=scale, enable_gqa=True)[0]


def _plan(q, k, params, density=None):
    est = estimate(q, k, q_offset=0, params=params, scale=q.shape[-1] ** -0.5)
    return build_block_lists(est, q_offset=0, Nk=k.shape[1], params=params, force_density=density)


def bench_length(cfg: BenchConfig, n: int, device: torch.device, timer, qkv=None) -> dict:
    """SDPA vs estimate + block-sparse attention at one length, over the forced densities
    (random Q/K/V, or `qkv` = (q [Hq, n, d], k, v [Hkv, n, d]) on `device`)."""
    gen = torch.Generator(device=device).manual_seed(n)
    dtype = getattr(torch, cfg.dtype)
    if qkv is not None:
        q, k, v = qkv
    else:
        q = torch.randn(cfg.hq, n, cfg.head_dim, device=device, dtype=dtype, generator=gen)
        k, v = (torch.randn(cfg.hkv, n, cfg.head_dim, device=device, dtype=dtype, generator=gen) for _ in "kv")
    scale = cfg.head_dim ** -0.5
    params = cfg.params()
    flops = 4.0 * cfg.head_dim * cfg.hq * n * (n + 1) / 2          # causal, QK^T and PV
    row = {"length": n, "sdpa_ms": timer(lambda: _sdpa(q, k, v, scale))}
    dense = _plan(q, k, params, 1.0)
    row["dense_ours_ms"] = timer(lambda: block_sparse_attention(q, k, v, dense, q_offset=0, scale=scale))
    row["sdpa_tflops"] = flops / row["sdpa_ms"] / 1e9
    row["dense_ours_tflops"] = flops / row["dense_ours_ms"] / 1e9
    row["estimate_only_ms"] = timer(lambda: estimate(q, k, q_offset=0, params=params, scale=scale))
    row["pool_ms"] = timer(lambda: (pool_blocks(q, cfg.block_size), pool_blocks(k, cfg.block_size)))
    row["points"] = []
    print(f"[prefill bench] {n}: sdpa {row['sdpa_ms']:.2f} ms, dense ours {row['dense_ours_ms']:.2f} ms", flush=True)
    for target in cfg.densities:
        lists = _plan(q, k, params, target)
        est_ms = timer(lambda: _plan(q, k, params, target))
        attn_ms = timer(lambda: block_sparse_attention(q, k, v, lists, q_offset=0, scale=scale))
        total = est_ms + attn_ms
        row["points"].append({"target_density": target, "density": lists.density, "estimate_ms": est_ms,
                              "attention_ms": attn_ms, "total_ms": total, "speedup": row["sdpa_ms"] / total,
                              "estimate_over_attention": est_ms / attn_ms})
        print(f"[prefill bench] {n} @ {lists.density:.1%}: estimate {est_ms:.3f} ms, attention {attn_ms:.3f} ms, "
              f"speedup {row['sdpa_ms'] / total:.2f}x", flush=True)
    return row


def fidelity_layer(cfg: BenchConfig, layer: int, device: torch.device, qkv=None,
                   dense_rows: torch.Tensor | None = None) -> list[dict]:
    """Recall and output error of each preset on one simulated layer of the structured workload, or
    on `qkv` (captured q [Hq, N, d], k, v [Hkv, N, d]) with `dense_rows` [Mq] bool (text blocks)."""
    if qkv is None:
        q, k, v = structured_qk(cfg.fidelity_frames, cfg.patches_per_frame, cfg.hq, cfg.hkv, cfg.head_dim,
                                seed=layer, dtype=getattr(torch, cfg.dtype), device=device)
    else:
        q, k, v = qkv
    scale = cfg.head_dim ** -0.5
    rows = dict(rows=cfg.recall_rows, seed=layer)
    ref = _sdpa(q.float(), k.float(), v.float(), scale) if device.type == "cpu" else _sdpa(q, k, v, scale)
    oracle = oracle_density(q, k, q_offset=0, scale=scale, block_size=cfg.block_size, **rows)
    out = []
    for preset, gamma in PRESETS.items():
        params = cfg.params(gamma=gamma)
        est = estimate(q, k, q_offset=0, params=params, scale=scale)
        entry = {"layer": layer, "preset": preset, "gamma": gamma, "tokens": q.shape[1],
                 "oracle_density_mean": oracle.mean().item()}
        for tag, p in (("", params), ("no_fallback_", replace(params, dense_fallback=1.0))):
            lists = build_block_lists(est, q_offset=0, Nk=k.shape[1], params=p, force_dense_rows=dense_rows)
            o, _ = block_sparse_attention(q, k, v, lists, q_offset=0, scale=scale)
            rec = recall_summary(key_recall(q, k, lists, q_offset=0, scale=scale, **rows))
            entry.update({tag + "density": lists.density, tag + "out_rel_err": output_error(o, ref),
                          **{tag + key: val for key, val in rec.items()}})
            if not tag:
                entry.update({"dense_fallback": lists.dense, "lazy_share": lists.lazy.float().mean().item(),
                              "budget_mean": lists.budget.float().mean().item()})
        out.append(entry)
    return out


def _targets(kernel: list[dict], fidelity: list[dict]) -> list[dict]:
    """Each acceptance target with the measured value and whether it is met."""
    by_len = {row["length"]: row for row in kernel}
    found = []
    for n, dens, goal in SPEED_TARGETS:
        pts = [p for p in by_len.get(n, {"points": []})["points"] if p["target_density"] == dens]
        if pts:
            found.append({"target": f"speedup at {n // 1024}K, {dens:.0%} kept", "goal": goal,
                          "value": pts[0]["speedup"], "met": pts[0]["speedup"] >= goal})
    n, dens, goal = ESTIMATE_TARGET
    pts = [p for p in by_len.get(n, {"points": []})["points"] if p["target_density"] == dens]
    if pts:
        val = pts[0]["estimate_over_attention"]
        found.append({"target": f"estimate / attention time at {n // 1024}K", "goal": goal, "value": val,
                      "met": val <= goal})
    for e in (e for e in fidelity if e["preset"] == "balanced"):
        # a chunk that fell back to dense has recall 1 by construction: say so, and also give what
        # the sparse lists themselves reach
        note = " (dense fallback fired)" if e["dense_fallback"] else ""
        for tag, key, goal in (("", "recall_mean", 0.95), ("", "recall_p5", 0.9),
                               ("no_fallback_", "recall_mean", 0.95), ("no_fallback_", "recall_p5", 0.9)):
            name = f"balanced {key} layer {e['layer']}" + (" without fallback" if tag else note)
            found.append({"target": name, "goal": goal, "value": e[tag + key], "met": e[tag + key] >= goal})
    return found


def _prewarm(cfg: BenchConfig, device: torch.device) -> None:
    """Let the attention autotuner pick its tile on a mid-size case (32K at 25% when swept) rather
    than on whichever tiny case comes first: its key is the head layout, not the length."""
    n = min((x for x in cfg.lengths if x >= 32768), default=max(cfg.lengths))
    dtype = getattr(torch, cfg.dtype)
    q = torch.randn(cfg.hq, n, cfg.head_dim, device=device, dtype=dtype)
    k, v = (torch.randn(cfg.hkv, n, cfg.head_dim, device=device, dtype=dtype) for _ in "kv")
    lists = _plan(q, k, cfg.params(), 0.25)
    block_sparse_attention(q, k, v, lists, q_offset=0, scale=cfg.head_dim ** -0.5)


def _write(result: dict, out_dir: Path, final: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps({**result, "complete": final}, indent=1))


def _captured(cfg: BenchConfig, path: Path, device: torch.device):
    """(config matching the file's heads and length, workload name, {layer: (q, k, v)}, dense rows)."""
    from omnivideo.bench.capture import load_qk

    qk = load_qk(path)
    dtype = getattr(torch, cfg.dtype)
    layers = {i: tuple(t.to(device=device, dtype=dtype) for t in qkv) for i, qkv in qk.layers.items()}
    q, k, _ = next(iter(layers.values()))
    cfg = replace(cfg, hq=q.shape[0], hkv=k.shape[0], head_dim=k.shape[2], lengths=(k.shape[1],),
                  fidelity_layers=len(layers))
    pad = (-k.shape[1]) % cfg.block_size
    rows = torch.cat([qk.text_mask, qk.text_mask.new_zeros(pad)]).view(-1, cfg.block_size).any(1).to(device)
    m = qk.meta
    name = (f"captured: {Path(path).name} ({m['model']}, {m['quantization']}, video {m['video']}, layers "
            f"{m['layers']}, {m['tokens']} of {m['prefix_tokens']} prefix tokens, text blocks dense)")
    return cfg, name, layers, rows


def run_kernel_bench(lengths=None, densities=None, out_dir: Path = DEFAULT_OUT, *, small: bool = False,
                     config: BenchConfig | None = None, qk: Path | None = None) -> dict:
    """Run the fidelity measurement and the speed sweep; write results.json (after every stage, so
    a run cut short keeps what it measured), then report.md and speedup.png. `qk`: a `bench capture`
    file to measure on instead of the structured workload (and random Q/K for speed)."""
    cfg = config or (SMALL if small else BenchConfig())
    cfg = replace(cfg, **{k: tuple(v) for k, v in (("lengths", lengths), ("densities", densities)) if v})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu" and cfg.dtype == "bfloat16":
        raise ConfigError("bf16 kernels need a GPU (the Triton interpreter gets bf16 dot products wrong); "
                          "use --small on CPU")
    out_dir = Path(out_dir)
    result = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu (Triton interpreter)",
              "versions": {"torch": torch.__version__, "triton": __import__("triton").__version__},
              "config": asdict(cfg), "workload": "structured_qk (omnivideo/bench/workload.py)",
              "kernel": [], "fidelity": []}
    captured, dense_rows = {}, None
    if qk is not None:
        cfg, result["workload"], captured, dense_rows = _captured(cfg, qk, device)
        result["config"] = asdict(cfg)
    for layer in captured or range(cfg.fidelity_layers):
        result["fidelity"] += fidelity_layer(cfg, layer, device, captured.get(layer), dense_rows)
        _write(result, out_dir, False)
    if device.type == "cuda":
        _prewarm(cfg, device)
    timer = _timer(device)
    for n in cfg.lengths:
        result["kernel"].append(bench_length(cfg, n, device, timer, next(iter(captured.values()), None)))
        result["attention_tuning"] = tuned_configs()
        _write(result, out_dir, False)
    result["targets"] = _targets(result["kernel"], result["fidelity"])
    _write(result, out_dir, True)
    write_report(result, out_dir)
    return result
