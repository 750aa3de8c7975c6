"""GPU probe for issue 4 (not a benchmark: a diagnostic whose log guides tuning; numbers that are claimed come
from `bench prefill` / `bench prefill-e2e`).

1. Tile sweep of the block-sparse kernel at 32K, 25% of causal blocks kept (random q/k/v, GQA 28/4, d 128,
   bf16): every fixed (BLOCK_M, NB, warps, stages) launch vs the autotuned launcher.
2. One prefill chunk of the engine's sparse path (the last 4096 queries of a 32K prefix): estimate, list
   building, attention kernel, and the whole `SparsePrefill` call, to see the host work between them.

    python scripts/gpu/prefill_probe.py
"""
import json
import sys

import torch
from triton.testing import do_bench

from omnivideo.engine.prefill.sparse_prefill import SparsePrefill
from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention, tuned_configs
from omnivideo.kernels.sparse_prefill.estimate import estimate
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams, build_block_lists

HQ, HKV, D = 28, 4, 128
dev = torch.device("cuda")
bench = lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median")  # noqa: E731


def qkv(n: int, seed: int = 0):
    g = torch.Generator(device=dev).manual_seed(seed)
    q = torch.randn(HQ, n, D, device=dev, dtype=torch.bfloat16, generator=g)
    k, v = (torch.randn(HKV, n, D, device=dev, dtype=torch.bfloat16, generator=g) for _ in "kv")
    return q, k, v


def sweep(n: int = 32768, density: float = 0.25) -> dict:
    q, k, v = qkv(n)
    params, scale = SparseParams(), D ** -0.5
    est = estimate(q, k, q_offset=0, params=params, scale=scale)
    lists = build_block_lists(est, q_offset=0, Nk=n, params=params, force_density=density)
    sdpa = bench(lambda: torch.nn.functional.scaled_dot_product_attention(
        q[None], k[None], v[None], is_causal=True, scale=scale, enable_gqa=True))
    plan = bench(lambda: build_block_lists(estimate(q, k, q_offset=0, params=params, scale=scale), q_offset=0,
                                           Nk=n, params=params, force_density=density))
    ref, _ = block_sparse_attention(q, k, v, lists, q_offset=0, scale=scale)
    tuned = bench(lambda: block_sparse_attention(q, k, v, lists, q_offset=0, scale=scale))
    rows = {"sdpa_ms": sdpa, "plan_ms": plan, "density": float(lists.density), "tuned_ms": tuned,
            "tuned_config": tuned_configs(), "fixed": []}
    print(f"32K @ {lists.density:.1%}: sdpa {sdpa:.3f} ms, plan {plan:.3f} ms, tuned attention {tuned:.3f} ms "
          f"-> speedup {sdpa / (plan + tuned):.3f}x", flush=True)
    # run 1 (2026-11-23) swept (64, 128) x NB (1, 2) x warps (4, 8) x stages (2, 3, 4): every fixed launch was
    # slower than the tuned one (main 128-row tiles + a 64-row tail launch); NB 2 and 8 warps lost at 128 rows.
    for bm, nb, warps, stages in [(128, 1, 4, 2), (128, 1, 4, 3), (256, 1, 8, 2), (256, 1, 8, 3), (256, 2, 8, 2)]:
        try:
            out, _ = block_sparse_attention(q, k, v, lists, q_offset=0, scale=scale, block_m=bm, blocks_per_tile=nb,
                                            num_warps=warps, num_stages=stages)
            err = float((out.float() - ref.float()).abs().max())
            ms = bench(lambda: block_sparse_attention(q, k, v, lists, q_offset=0, scale=scale, block_m=bm,
                                                      blocks_per_tile=nb, num_warps=warps, num_stages=stages))
        except Exception as e:  # noqa: BLE001  a config that does not build (shared memory) is just skipped
            print(f"  bm {bm} nb {nb} w {warps} s {stages}: failed {type(e).__name__}: {str(e)[:120]}", flush=True)
            continue
        rows["fixed"].append({"block_m": bm, "nb": nb, "warps": warps, "stages": stages, "ms": ms, "max_err": err})
        print(f"  bm {bm:3d} nb {nb} w {warps} s {stages}: {ms:.3f} ms (max err vs tuned {err:.2e})", flush=True)
    return rows


def chunk_call(n: int = 32768, chunk: int = 4096, density: float = 0.25) -> dict:
    q, k, v = qkv(n, seed=1)
    q = q[:, n - chunk:]
    params, scale = SparseParams(), D ** -0.5
    off = n - chunk
    text = torch.zeros(n, dtype=torch.bool, device=dev)
    sp = SparsePrefill(params, text, force_density=density)
    est = lambda: estimate(q, k, q_offset=off, params=params, scale=scale)  # noqa: E731
    e = est()
    lists = build_block_lists(e, q_offset=off, Nk=n, params=params, force_density=density)
    res = {"estimate_ms": bench(est),
           "lists_ms": bench(lambda: build_block_lists(e, q_offset=off, Nk=n, params=params, force_density=density)),
           "attention_ms": bench(lambda: block_sparse_attention(q, k, v, lists, q_offset=off, scale=scale)),
           "sparse_call_ms": bench(lambda: sp(None, q[None], k[None], v[None], scale)),
           "density": float(lists.density)}
    from omnivideo.engine.attention import _lse_cudnn, _split_attention
    res["dense_split_cudnn_ms"] = bench(lambda: _split_attention(q[None], k[None], v[None], scale, _lse_cudnn))
    print("chunk call:", json.dumps({k: round(v, 4) for k, v in res.items()}), flush=True)
    return res


if __name__ == "__main__":
    out = {"device": torch.cuda.get_device_name(), "sweep": sweep(), "chunk_call": chunk_call()}
    path = sys.argv[1] if len(sys.argv) > 1 else "prefill_probe.json"
    with open(path, "w") as f:
        json.dump(out, f, indent=1, default=str)
