"""GPU probe for issue 5 (a diagnostic whose log guides the next change; claimed numbers come from
`bench decode`):

1. kernel-level profile of the graph-captured decode step at 8K context (torch.profiler over 16 tokens):
   every kernel's time and count per token, to see what the "rest of the step" is made of;
2. NF4 GEMV at M = 1 on the 7B's shapes and on the fused shapes (q|k|v 4608 x 3584, gate|up 37888 x 3584):
   the routed kernel, a loads-only twin (the memory pattern's bound) and the routed kernel with x
   converted by a plain cast (run 2 timed x handed over in fp32 and 4- / 16-row tiles: fp32 x 3-6 %
   faster, other tiles slower). (Run 1 also timed a tensor-core twin, codes scaled to bf16 and fed to tl.dot: 2-3x
   slower than the routed kernel on every shape, the register-to-dot-operand layout conversion;
   docs/decode_engine.md.)
3. the SASS of the routed kernel for 18944 x 3584 (instruction mix of the inner loop);
4. --variants (issue 20): GB/s of each GEMV variant (`GemvPlan.variant`: base, rows2) and tile plan on the
   fused 7B shapes of a decode step, against the measured copy bandwidth; `$OUT/gemv_variants.json`
   and the variant whose step-weighted time is lowest (`best_variant`, what decode_fused.sh benches).

    python scripts/gpu/decode_probe.py [--skip-profile] [--profile-only] [--sweep] [--sass] [--variants]
"""
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import replace

import torch
import triton
import triton.language as tl

from omnivideo.kernels.nf4.nf4_gemv import _nf4_gemv_kernel, default_plan, nf4_gemv

OUT = os.environ.get("OUT", "/tmp/gpu_out")


@triton.jit
def _loads_kernel(Packed, Absmax, Out, N, K, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                  BLOCKSIZE: tl.constexpr):
    """The routed kernel's loads (words + uint8 absmax) with an XOR instead of the math."""
    G: tl.constexpr = BLOCK_K // BLOCKSIZE
    WB: tl.constexpr = BLOCKSIZE // 8
    i_n = tl.program_id(0)
    o_n = i_n * BLOCK_N + tl.arange(0, BLOCK_N)
    o_g = tl.arange(0, G)
    o_j = tl.arange(0, WB)
    p_q = Packed + o_n.to(tl.int64)[:, None, None] * (K // 8) + o_g[None, :, None] * WB + o_j[None, None, :]
    b_blk = o_n[:, None] * (K // BLOCKSIZE) + o_g[None, :]
    acc = tl.zeros([BLOCK_N, G, WB], dtype=tl.int32)
    b_w = tl.load(p_q)
    b_a = tl.load(Absmax + b_blk).to(tl.int32)
    for k0 in range(0, K, BLOCK_K):
        k1 = (k0 + BLOCK_K) % K
        b_w1 = tl.load(p_q + k1 // 8)
        b_a1 = tl.load(Absmax + b_blk + k1 // BLOCKSIZE).to(tl.int32)
        acc ^= b_w + b_a[:, :, None]
        b_w, b_a = b_w1, b_a1
    tl.store(Out + o_n, tl.sum(tl.sum(acc, axis=2), axis=1).to(tl.float32))


def loads_only(w, block_n=8, block_k=512):
    n, k = w.shape
    out = torch.empty(n, dtype=torch.float32, device=w.packed.device)
    _loads_kernel[(triton.cdiv(n, block_n),)](w.packed.reshape(-1).view(torch.int32), w.absmax, out, n, k,
                                              BLOCK_N=block_n, BLOCK_K=block_k, BLOCKSIZE=w.blocksize)
    return out


def graph_us(fn, reps=20):
    """µs per replay of a CUDA graph of fn() (the decode bench's own timer)."""
    from omnivideo.bench.decode.breakdown import graph_ms

    return 1000 * graph_ms(fn, reps)


def nf4_copies(n: int, k: int) -> list:
    """NF4Weights of random [n, k] matrices, enough copies (> 400 MB) that a pass is never served from L2."""
    import bitsandbytes as bnb
    from omnivideo.engine.fused.nf4_linear import nf4_weight

    ws = []
    for _ in range(max(2, int(400e6 // (n * k // 2)))):
        q = bnb.nn.Linear4bit(k, n, bias=False, compute_dtype=torch.bfloat16, compress_statistics=True,
                              quant_type="nf4")
        q.weight = bnb.nn.Params4bit(torch.randn(n, k) * 0.02, requires_grad=False, quant_type="nf4",
                                     compress_statistics=True)
        ws.append(nf4_weight(q.to("cuda")))
    return ws


def gemv_probe() -> list[dict]:
    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    rows = []
    for n, k in [(37888, 3584), (3584, 18944), (3584, 3584), (4608, 3584)]:
        ws = nf4_copies(n, k)
        copies = len(ws)
        per = sum(t.numel() * t.element_size() for t in (ws[0].packed, ws[0].absmax, ws[0].absmax_scale))
        x = torch.randn(1, k, dtype=torch.bfloat16, device=dev)
        ref = nf4_gemv(x.float(), ws[0], lut=False)
        row = {"N": n, "K": k, "bytes": per}
        with torch.inference_mode():
            t = graph_us(lambda: [nf4_gemv(x, w) for w in ws]) / copies
            row["routed_us"] = round(t, 2)
            t = graph_us(lambda: [loads_only(w) for w in ws]) / copies
            row["loads_only_us"] = round(t, 2)
            # x converted by the plain cast (after Triton's shared-memory broadcast: one conversion per weight)
            # instead of `_x_to_f32` (once per element, before it)
            plan = default_plan(1, n, k, 64, sms)
            cast = replace(plan, x_asm=False)
            y = nf4_gemv(x, ws[0], plan=cast)
            row["cast_err"] = round(float((y.float() - ref).abs().max() / ref.abs().max()), 5)
            row["routed_err"] = round(float((nf4_gemv(x, ws[0]).float() - ref).abs().max() / ref.abs().max()), 5)
            row["x_cast_us"] = round(graph_us(lambda: [nf4_gemv(x, w, plan=cast) for w in ws]) / copies, 2)
        for key in list(row):
            if key.endswith("_us"):
                row[key.replace("_us", "_GBps")] = round(per / row[key] / 1e3, 1)
        print(json.dumps(row), flush=True)
        rows.append(row)
        del ws
        torch.cuda.empty_cache()
    return rows


def plan_sweep() -> list[dict]:
    """Tile plans of the routed kernel (x converted before its broadcast) on the step's four GEMV shapes."""
    import itertools

    from omnivideo.kernels.nf4.nf4_gemv import GemvPlan

    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    rows = []
    for n, k in [(3584, 18944), (3584, 3584), (4608, 3584), (37888, 3584)]:
        ws = nf4_copies(n, k)
        copies = len(ws)
        x = torch.randn(1, k, dtype=torch.bfloat16, device=dev)
        default = default_plan(1, n, k, 64, sms)
        for bk, sp, nw in itertools.product((256, 512, 1024), (1, 2, 4, 8), (4, 8)):
            if sp > 1 and n >= 16384:
                continue
            plan = GemvPlan(block_n=8, block_k=bk, split_k=sp, num_warps=nw)
            t = graph_us(lambda: [nf4_gemv(x, w, plan=plan) for w in ws], reps=10) / copies
            rows.append({"N": n, "K": k, "plan": [bk, sp, nw], "us": round(t, 2), "default": plan == default})
        best = min((r for r in rows if r["N"] == n and r["K"] == k), key=lambda r: r["us"])
        dflt = next(r for r in rows if r["N"] == n and r["K"] == k and r["default"])
        print(f"{n}x{k}: default {dflt['plan']} {dflt['us']} us, best {best['plan']} {best['us']} us", flush=True)
        del ws
        torch.cuda.empty_cache()
    return rows


# the fused GEMVs of one 7B decode step: (N, K, per step) q|k|v, o, gate|up, down, x 28 layers
STEP_SHAPES = [(4608, 3584, 28), (3584, 3584, 28), (37888, 3584, 28), (3584, 18944, 28)]


def variant_sweep() -> dict:
    """Every variant x tile plan on the step's shapes: µs, GB/s and share of the measured copy bandwidth."""
    import itertools

    from omnivideo.bench.decode.breakdown import measure_bandwidth
    from omnivideo.kernels.nf4.nf4_gemv import VARIANTS, GemvPlan

    dev = torch.device("cuda")
    sms = torch.cuda.get_device_properties(dev).multi_processor_count
    copy = measure_bandwidth(dev)
    rows, best = [], {}
    deadline = time.time() + float(os.environ.get("SWEEP_S", "200"))  # then only the default plans
    for n, k, per_step in STEP_SHAPES:
        ws = nf4_copies(n, k)
        per = sum(t.numel() * t.element_size() for t in (ws[0].packed, ws[0].absmax, ws[0].absmax_scale))
        x = torch.randn(1, k, dtype=torch.bfloat16, device=dev)
        ref = nf4_gemv(x.float(), ws[0], lut=False)
        defaults = [replace(default_plan(1, n, k, 64, sms), variant=v) for v in VARIANTS]
        swept = {GemvPlan(block_n=8, block_k=bk, split_k=sp, num_warps=nw, variant=v)
                 for v, bk, sp, nw in itertools.product(VARIANTS, (512, 1024), (1, 2, 4), (4, 8))
                 if not (sp > 1 and n >= 16384)} - set(defaults)
        for plan in defaults + sorted(swept, key=repr):
            if plan not in defaults and time.time() > deadline:
                continue
            with torch.inference_mode():
                err = float((nf4_gemv(x, ws[0], plan=plan).float() - ref).abs().max() / ref.abs().max())
                us = graph_us(lambda: [nf4_gemv(x, w, plan=plan) for w in ws], reps=10) / len(ws)
            row = {"N": n, "K": k, "variant": plan.variant, "plan": [plan.block_n, plan.block_k, plan.split_k,
                   plan.num_warps], "default": plan == replace(default_plan(1, n, k, 64, sms), variant=plan.variant),
                   "us": round(us, 2), "GBps": round(per / us / 1e3, 1), "of_copy": round(per / us / 1e3 / copy, 3),
                   "max_rel_err": round(err, 5)}
            rows.append(row)
            key = (n, k, plan.variant)
            if err < 2e-2 and (key not in best or us < best[key]["us"]):
                best[key] = row
        for v in VARIANTS:
            b = best.get((n, k, v))
            if b:
                print(f"{n}x{k} {v}: best {b['plan']} {b['us']} us {b['GBps']} GB/s ({b['of_copy']:.0%} of copy)",
                      flush=True)
        del ws
        torch.cuda.empty_cache()
    step_us = {v: round(sum(best[(n, k, v)]["us"] * c for n, k, c in STEP_SHAPES if (n, k, v) in best), 1)
               for v in VARIANTS}
    default_us = {v: round(sum(next(r["us"] for r in rows if (r["N"], r["K"], r["variant"]) == (n, k, v)
                                    and r["default"]) * c for n, k, c in STEP_SHAPES), 1) for v in VARIANTS}
    out = {"copy_GBps": round(copy, 1), "rows": rows, "best_plan_step_us": step_us,
           "default_plan_step_us": default_us, "best_variant": min(default_us, key=default_us.get)}
    print(f"copy {copy:.0f} GB/s; step GEMV time, default plans {default_us} us, best plans {step_us} us; "
          f"best variant (default plans) {out['best_variant']}", flush=True)
    with open(f"{OUT}/gemv_variants.json", "w") as f:
        json.dump(out, f, indent=1)
    return out


def dump_sass() -> None:
    cache = _nf4_gemv_kernel.device_caches
    for dev_key, entry in cache.items():
        kernels = entry[0] if isinstance(entry, tuple) else entry
        for i, compiled in enumerate(kernels.values()):
            for kind in ("ptx", "sass", "ttgir"):
                try:
                    text = compiled.asm[kind]
                except Exception as e:  # noqa: BLE001
                    text = f"unavailable: {e}"
                if isinstance(text, bytes):
                    continue
                with open(f"{OUT}/nf4_gemv_{i}.{kind}", "w") as f:
                    f.write(text)
            print("dumped kernel", i, getattr(compiled, "name", "?"), flush=True)


def profile_step(context: int = 8192) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from omnivideo.engine.engine import Engine
    from omnivideo.engine.prefill.question_prefill import host_conversation
    from omnivideo.engine.sampling import SamplingParams
    from omnivideo.engine.decode.slim_decode import SlimDecodeConfig
    from omnivideo.bench.decode.decode import _prefix_ids
    from omnivideo.bench.random_model import random_model, synthetic_kv

    dev = torch.device("cuda")
    loaded = random_model("7b", dev, "nf4")
    engine = Engine(loaded, slim_decode=SlimDecodeConfig(gamma_decode=1.0))
    conv = host_conversation(engine, synthetic_kv(loaded, context, 0), _prefix_ids(engine, context), 0)
    question = list(range(1000, 1032))
    gen = engine.generate(conv, question, SamplingParams(max_new_tokens=64), [])
    for _ in range(6):
        next(gen)
    torch.cuda.synchronize()
    tokens = 16
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(tokens):
            next(gen)
        torch.cuda.synchronize()
    agg = defaultdict(lambda: [0, 0.0])
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            a = agg[ev.name]
            a[0] += 1
            a[1] += ev.time_range.elapsed_us()
    rows = sorted(({"kernel": k[:140], "per_token": c / tokens, "us_per_token": round(t / tokens, 2),
                    "us_each": round(t / c, 2)} for k, (c, t) in agg.items()), key=lambda r: -r["us_per_token"])
    total = sum(r["us_per_token"] for r in rows)
    print(f"decode step at {context}: {total:.1f} us of kernels per token, "
          f"{sum(r['per_token'] for r in rows):.0f} kernels per token", flush=True)
    for r in rows[:40]:
        print(f"  {r['us_per_token']:9.2f} us  {r['per_token']:6.1f} x {r['us_each']:7.2f}  {r['kernel']}", flush=True)
    return {"context": context, "kernel_us_per_token": total, "kernels": rows}


if __name__ == "__main__":
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__}
    if "--variants" in sys.argv:  # issue 20's sweep alone (decode_fused.sh)
        variant_sweep()
        sys.exit(0)
    if "--skip-profile" not in sys.argv:
        result["profile"] = profile_step()
        torch.cuda.empty_cache()
    if "--sweep" in sys.argv:
        result["sweep"] = plan_sweep()
    elif "--profile-only" not in sys.argv:
        result["gemv"] = gemv_probe()
    if "--sass" in sys.argv:  # many files: only when asked
        dump_sass()
    with open(f"{OUT}/decode_probe.json", "w") as f:
        json.dump(result, f, indent=1)
