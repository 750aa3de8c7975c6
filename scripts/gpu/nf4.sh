#!/usr/bin/env bash
# NF4 GEMV on the GPU box (device tool), one call, ~4 minutes: the wheel preamble, the NF4 tests
# (kernel bf16 + engine routing + decode-graph capture), a microbench of our GEMV against
# bitsandbytes' gemv_4bit on the 7B's shapes, and `bench decode` at 32K/64K with the GEMV routed.
#   run: bash scripts/gpu/nf4.sh      (carry [".whl"]: bitsandbytes)
#   SWEEP=1 bash scripts/gpu/nf4.sh   also sweeps tile plans (tuning, +~60 s)
#   NF4_STEPS="tests bench" bash ...   runs only those steps (default: tests bench decode)
# Every step is under `timeout` and may fail without stopping the next; logs and JSON land in $OUT.
set -uo pipefail
source scripts/gpu/preamble.sh
step() { echo "=== $1 ($(date +%T))"; }
STEPS=" ${NF4_STEPS:-tests bench decode} "
want() { [[ "$STEPS" == *" $1 "* ]]; }
step env
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.mem --format=csv | tee "$OUT/nf4_env.txt"
python3 -c "import torch, triton, transformers, bitsandbytes; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__)" 2>&1 | tee -a "$OUT/nf4_env.txt"

if want tests; then
step "tests: kernel (bf16 + fp32/fp16 on the GPU), routing, graph capture"
# kernel: only the gpu-marked (bf16, the 7B's shapes) ones: the fp32/fp16 cases compile ~40 variants (~80 s)
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu tests/kernels/test_nf4_gemv.py tests/kernels/test_nf4_lut.py 2>&1 \
  | tee "$OUT/nf4_tests.log" | tail -25
echo "kernel tests rc=${PIPESTATUS[0]}"
timeout 100 python3 -m pytest -q -p no:cacheprovider tests/engine/test_nf4_linear.py \
  "tests/engine/test_decode_graph.py::test_graph_replay_gives_the_same_tokens_as_eager" 2>&1 \
  | tee -a "$OUT/nf4_tests.log" | tail -25
echo "engine tests rc=${PIPESTATUS[0]}"
fi

if want bench; then
step "microbench: GB/s of our GEMV vs bitsandbytes (CUDA graphs, weights cycled past L2)"
timeout ${BENCH_TIMEOUT:-150} python3 - <<'PY' 2>&1 | tee "$OUT/nf4_bench.log"
import json, os, itertools, torch, triton, bitsandbytes as bnb
from omnivideo.engine.fused.nf4_linear import route_nf4_linears, unroute_nf4_linears, nf4_weight
from omnivideo.kernels.nf4.nf4_gemv import GemvPlan, default_plan, nf4_gemv

torch.manual_seed(0)
dev = torch.device("cuda")
sms = torch.cuda.get_device_properties(dev).multi_processor_count

def layers(n, k, copies):
    out = torch.nn.ModuleList()
    for _ in range(copies):
        q = bnb.nn.Linear4bit(k, n, bias=False, compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4")
        q.weight = bnb.nn.Params4bit(torch.randn(n, k) * 0.02, requires_grad=False, quant_type="nf4", compress_statistics=True)
        out.append(q.to(dev))
    return out

def nbytes(w):
    return sum(t.numel() * t.element_size() for t in (w.packed, w.absmax, w.absmax_scale, w.absmax_code, w.code))

def graph_us(fn, reps=20):
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn(); fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay(); torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        g.replay()
    b.record(); b.synchronize()
    return 1000 * a.elapsed_time(b) / reps

rows, sweep = [], []
for n, k in [(3584, 3584), (512, 3584), (18944, 3584), (3584, 18944)]:
    copies = max(2, int(400e6 // (n * k // 2)))  # > 400 MB per pass: nothing is served from the 50 MB L2
    mods = layers(n, k, copies)
    ws = [nf4_weight(m) for m in mods]
    per = nbytes(ws[0])
    for m_rows in (1, 4):
        x = torch.randn(1, m_rows, k, dtype=torch.bfloat16, device=dev)
        with torch.inference_mode():
            unroute_nf4_linears(mods)
            t_bnb = graph_us(lambda: [m(x) for m in mods]) / copies
            route_nf4_linears(mods, enabled=True)
            t_ours = graph_us(lambda: [m(x) for m in mods]) / copies
            x2 = x[0]
            t_gather = graph_us(lambda: [nf4_gemv(x2, w, lut=False) for w in ws]) / copies
        plan = default_plan(m_rows, n, k, 64, sms)
        row = dict(N=n, K=k, M=m_rows, bytes=per, plan=plan.__dict__, bnb_us=round(t_bnb, 2), ours_us=round(t_ours, 2),
                   gather_us=round(t_gather, 2), bnb_GBps=round(per / t_bnb / 1e3, 1),
                   ours_GBps=round(per / t_ours / 1e3, 1), gather_GBps=round(per / t_gather / 1e3, 1),
                   speedup=round(t_bnb / t_ours, 2))
        rows.append(row); print(json.dumps(row), flush=True)
    if os.environ.get("SWEEP") == "1":
        x = torch.randn(1, k, dtype=torch.bfloat16, device=dev)
        best = None
        for bn, bk, sp, nw in itertools.product((8, 16, 32), (256, 512, 1024), (1, 2, 4, 8), (4, 8)):
            if bk > k or (sp > 1 and n >= 8192) or bn * bk // 8 < 32 * nw or bn * bk // 8 > 2048 * nw:
                continue
            p = GemvPlan(block_n=bn, block_k=bk, split_k=sp, num_warps=nw)
            try:
                t = graph_us(lambda: [nf4_gemv(x, w, plan=p) for w in ws], reps=5) / copies
            except Exception as e:
                print("plan", p, "failed:", type(e).__name__, str(e)[:200]); continue
            r = dict(N=n, K=k, plan=p.__dict__, us=round(t, 2), GBps=round(per / t / 1e3, 1))
            sweep.append(r); print("sweep", json.dumps(r), flush=True)
            best = r if best is None or r["us"] < best["us"] else best
        print("BEST", json.dumps(best), flush=True)
    del mods, ws; torch.cuda.empty_cache()
out = os.environ.get("OUT", "/tmp/gpu_out")
json.dump({"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "triton": triton.__version__,
           "bitsandbytes": bnb.__version__, "rows": rows, "sweep": sweep}, open(f"{out}/nf4_gemv_bench.json", "w"), indent=1)
PY
echo "microbench rc=${PIPESTATUS[0]}"
fi

if want decode; then
step "bench decode at 32K/64K, NF4 matmuls through our GEMV"
timeout 170 python3 - <<'PY' 2>&1 | tee "$OUT/nf4_decode.log" | grep -v "^  warnings.warn" | tail -40
import os
import omnivideo.bench.decode.decode as bench
from omnivideo.engine.fused.nf4_linear import route_nf4_linears

make = bench.random_model
def routed(*args, **kwargs):  # the bench builds its model without load_model, which routes NF4 models
    loaded = make(*args, **kwargs)
    print("routed NF4 layers:", route_nf4_linears(loaded.model, enabled=True), flush=True)
    return loaded
bench.random_model = routed
bench.main(["--contexts", "32768", "65536", "--no-hf", "--stream-context", "0", "--new-tokens", "32",
            "--out", os.path.join(os.environ.get("OUT", "/tmp/gpu_out"), "decode")])
PY
echo "decode rc=${PIPESTATUS[0]}"
fi
step done
