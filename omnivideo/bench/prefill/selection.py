"""Prefill selection on a `bench capture` file, chunked as the engine runs it: density, recall, output error.

    omnivideo bench prefill-selection cap.safetensors --out docs/benchmarks/prefill/synth

Where `bench prefill --qk` measures one whole-prefix chunk, this replays the engine's prefill: chunks of
`chunk` queries over every key before them, chunks with fewer than `min_keys` keys dense, text query
blocks dense, the presets' dense fallback per chunk. Per layer, preset and selection variant (the first
rule: one block-mean query against block-mean keys, one budget set by the flattest head; flat heads on
top of it; every key instead of block-mean keys; the shipped method: every key, 2 query parts per block,
flat heads): the share of causal blocks kept (work-weighted, dense chunks at 1.0),
fallbacks, lazy and flat-head shares, and on `rows` sampled query rows per chunk the recall (dense
softmax mass on kept keys) and the output error against dense attention. A layer whose every chunk fell
back is "dense": its recall is 1 by construction and says nothing about the selection (`sparse_layer`
False). The same code runs on a CPU (torch references) and a GPU (Triton kernels).
"""
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from omnivideo.bench.prefill.fidelity import sample_rows
from omnivideo.kernels import use_triton
from omnivideo.kernels.sparse_prefill.reference import block_mask_reference
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams

VARIANTS = {"first": dict(pooled_keys=True, flat_heads=False, query_parts=1),
            "first+flat": dict(pooled_keys=True, query_parts=1), "keys, 1 part": dict(query_parts=1), "shipped": {}}
PRESETS = {"balanced": 0.95, "fast": 0.9}


@dataclass(frozen=True, slots=True)
class SelectionConfig:
    chunk: int = 4096          # the engine's prefill chunk (EngineConfig.chunk_size)
    min_keys: int = 4096       # EngineConfig.sparse_min_keys
    rows: int = 96             # sampled query rows per chunk for recall and output error
    frame_tokens: int = 256    # visual tokens of a frame group (448x448 at 2x2 merge): the local window
    variants: tuple[str, ...] = tuple(VARIANTS)

    def __post_init__(self):
        if self.chunk < 64 or self.chunk % 64 or self.rows < 1 or self.min_keys < 0:
            raise ValueError(f"bad selection config {self}")
        if not set(self.variants) <= set(VARIANTS):
            raise ValueError(f"variants must be among {sorted(VARIANTS)}, got {self.variants}")


def _ops(device, dtype):
    if use_triton(device, dtype):
        from omnivideo.kernels.sparse_prefill.estimate import estimate
        from omnivideo.kernels.sparse_prefill.sparse_plan import build_block_lists
        return estimate, build_block_lists
    from omnivideo.kernels.sparse_prefill.reference import block_lists_reference, estimate_reference
    return estimate_reference, block_lists_reference


@torch.no_grad()
def _row_fidelity(q, k, v, keep, q_offset, t, scale, block):
    """Recall [Hq * rows] and (squared error, squared norm) of sampled rows t: dense vs kept-keys softmax."""
    Hq, Hkv, Nk = q.shape[0], k.shape[0], k.shape[1]
    g = Hq // Hkv
    causal = torch.arange(Nk, device=q.device)[None, :] <= (q_offset + t)[:, None]
    kb = torch.arange(Nk, device=q.device) // block
    rec, err, norm = [], 0.0, 0.0
    for h in range(Hq):
        s = ((q[h, t].float() @ k[h // g].float().T) * scale).masked_fill(~causal, float("-inf"))
        kept = keep[h // g][t // block][:, kb] & causal
        p = torch.softmax(s, -1)
        rec.append((p * kept).sum(-1))
        o_dense = p @ v[h // g].float()
        o_sparse = torch.softmax(s.masked_fill(~kept, float("-inf")), -1) @ v[h // g].float()
        err += (o_dense - o_sparse).pow(2).sum().item()
        norm += o_dense.pow(2).sum().item()
    return torch.cat(rec), err, norm


def measure_layer(q, k, v, dense_blocks, params: SparseParams, cfg: SelectionConfig, scale: float, seed: int) -> dict:
    """One layer of a capture (q [Hq, N, d], k/v [Hkv, N, d], dense_blocks [cdiv(N, B)] bool) under `params`."""
    B, N = params.block_size, q.shape[1]
    estimate, build_lists = _ops(q.device, q.dtype)
    kept = total = 0.0
    recs, err, norm, lazy, flat, fallbacks, estimated = [], 0.0, 0.0, [], [], 0, 0
    for q0 in range(0, N, cfg.chunk):
        nq = min(cfg.chunk, N - q0)
        nk = q0 + nq
        mq = -(-nq // B)
        causal = k.shape[0] * (mq * (q0 // B) + mq * (mq + 1) // 2)
        total += causal
        if nk < cfg.min_keys:
            kept += causal
            continue
        qc, kc, vc = q[:, q0:nk], k[:, :nk], v[:, :nk]
        est = estimate(qc, kc, q_offset=q0, params=params, scale=scale)
        rows = dense_blocks[q0 // B:q0 // B + mq].to(q.device)
        lists = build_lists(est, q_offset=q0, Nk=nk, params=params, force_dense_rows=rows)
        estimated += 1
        kept += lists.density * causal
        fallbacks += lists.dense
        if not lists.dense:
            lazy.append(lists.lazy[:, ~rows].float().mean().item())
            flat.append(lists.flat[:, ~rows].float().mean().item())
        t = sample_rows(nq, cfg.rows, seed + q0, q.device)
        r, e, n = _row_fidelity(qc, kc, vc, block_mask_reference(lists, -(-nk // B)), q0, t, scale, B)
        recs.append(r)
        err, norm = err + e, norm + n
    rec = torch.cat(recs).double().cpu() if recs else torch.ones(1, dtype=torch.float64)
    return {"density": round(kept / total, 4), "chunks_estimated": estimated, "fallbacks": fallbacks,
            "sparse_layer": estimated > fallbacks, "recall_mean": round(rec.mean().item(), 4),
            "recall_p5": round(torch.quantile(rec, 0.05).item(), 4),
            "out_rel_err": round((err / norm) ** 0.5, 4) if norm else 0.0,
            "lazy_share": round(sum(lazy) / len(lazy), 4) if lazy else None,
            "flat_share": round(sum(flat) / len(flat), 4) if flat else None}


def run_selection(qk_path: Path, out_dir: Path, cfg: SelectionConfig = SelectionConfig()) -> dict:
    """Every layer of the capture x preset x variant; writes selection.json and selection.md under out_dir."""
    from omnivideo.bench.capture import load_qk

    qk = load_qk(qk_path)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    B = SparseParams().block_size
    n = qk.text_mask.numel()
    dense_blocks = torch.cat([qk.text_mask, qk.text_mask.new_zeros((-n) % B)]).view(-1, B).any(1)
    rows = []
    for preset, gamma in PRESETS.items():
        for variant in cfg.variants:
            params = SparseParams(gamma=gamma, **VARIANTS[variant]).for_frames(cfg.frame_tokens)
            for layer, qkv in qk.layers.items():
                dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
                q, k, v = (x.to(device=device, dtype=dtype) for x in qkv)
                row = {"preset": preset, "variant": variant, "layer": layer, "window": params.window,
                       **measure_layer(q, k, v, dense_blocks, params, cfg, qk.meta["scale"], seed=1000 * layer)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    result = {"capture": {k: qk.meta[k] for k in ("model", "video", "tokens", "layers", "query_heads", "kv_heads")},
              "device": str(device), "config": {"chunk": cfg.chunk, "min_keys": cfg.min_keys, "rows": cfg.rows},
              "rows": rows}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "selection.json").write_text(json.dumps(result, indent=1))
    (out_dir / "selection.md").write_text(selection_table(result))
    return result


def selection_table(result: dict) -> str:
    """Markdown: one row per (preset, variant, layer); a layer that never ran sparse says so."""
    c = result["capture"]
    lines = [f"# Prefill selection, engine chunks, on {c['model']} ({c['video']}, {c['tokens']} tokens)", "",
             f"Device {result['device']}; chunks of {result['config']['chunk']}, {result['config']['rows']} sampled "
             "rows per chunk. Recall of a dense layer (every chunk fell back) is n/a.", "",
             "| preset | variant | layer | density | fallbacks | recall mean | recall p5 | out err | lazy | flat |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        rec = (f"{r['recall_mean']:.3f} | {r['recall_p5']:.3f}" if r["sparse_layer"] else "n/a | n/a")
        lines.append(f"| {r['preset']} | {r['variant']} | {r['layer']} | {r['density']:.3f} | "
                     f"{r['fallbacks']}/{r['chunks_estimated']} | {rec} | {r['out_rel_err']:.3f} | "
                     f"{r['lazy_share'] if r['lazy_share'] is not None else '-'} | "
                     f"{r['flat_share'] if r['flat_share'] is not None else '-'} |")
    return "\n".join(lines) + "\n"
