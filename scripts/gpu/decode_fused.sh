#!/usr/bin/env bash
# Issue 20 item 2 on one H200 in one call (< 9 min; every step has its own timeout):
#   1. smoke (45 s): the fused residual + norm stack and the rows2 GEMV compile and run on CUDA, else stop;
#   2. gpu-marked tests of this work (fused stack bf16 graph + kernel count, add_rms_norm bf16, NF4 GEMV
#      base and rows2 on the 7B shapes, graphs == eager tokens);
#   3. the GEMV variant sweep on the step's fused shapes (GB/s vs the measured copy bandwidth), which
#      picks the variant the bench runs with (best step-weighted time at default plans);
#   4. `bench decode` at 32K and 64K: ms/token vs the measured-bandwidth floor and vs transformers
#      generate, the step's kernels per token fused vs unfused, JSON + report + plot.
#   run: bash scripts/gpu/decode_fused.sh      (carry [".whl"])
# Result files (8): env.txt, tests.log, sweep.log, gemv_variants.json, bench.log, decode/{decode.json,
# report.md,decode.png}. Tracebacks land in tests.log (smoke, pytest) / sweep.log / bench.log.
set -uo pipefail
source scripts/gpu/preamble.sh
T0=$(date +%s)
record_env >/dev/null
step "smoke: fused stack + rows2 GEMV on CUDA"
timeout 45 python3 - <<'PY' 2>&1 | tee "$OUT/tests.log" | tail -20
import torch
from omnivideo.kernels.layers.rms_norm import add_rms_norm
from omnivideo.kernels.nf4.nf4_gemv import GemvPlan, nf4_gemv
from omnivideo.kernels.nf4.reference import NF4Weight, nf4_matmul_reference
import bitsandbytes.functional as bnbf
x = torch.randn(1, 3584, device="cuda", dtype=torch.bfloat16)
r, y = add_rms_norm(x, x, torch.ones(3584, device="cuda", dtype=torch.bfloat16), 1e-6)
w = torch.randn(512, 3584) * 0.05
packed, st = bnbf.quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")
nf = NF4Weight(packed.cuda(), st.absmax.cuda(), (512, 3584), st.code.cuda(), 64, absmax_code=st.state2.code.cuda(),
               absmax_scale=st.state2.absmax.cuda(), offset=st.offset.cuda(), absmax_blocksize=st.state2.blocksize)
for v in ("base", "rows2"):
    got = nf4_gemv(x, nf, plan=GemvPlan(split_k=2, variant=v)).float()
    ref = nf4_matmul_reference(x, nf).float()
    print(v, "max rel err", float((got - ref).abs().max() / ref.abs().max()))
print("SMOKE OK")
PY
if ! grep -q "SMOKE OK" "$OUT/tests.log"; then echo "smoke failed: see tests.log"; exit 1; fi
step "gpu tests"
timeout 140 python3 -m pytest -q -p no:cacheprovider -rs -m gpu tests/engine/test_fused_stack.py \
  tests/kernels/test_rms_norm.py tests/kernels/test_nf4_gemv.py tests/engine/test_decode_graph.py 2>&1 \
  | grep -v "warnings.warn" | tee -a "$OUT/tests.log" | tail -12
echo "tests rc=${PIPESTATUS[0]}"
step "GEMV variant sweep"
SWEEP_S=100 timeout 160 python3 scripts/gpu/decode_probe.py --variants 2>&1 | grep -v "warnings.warn" \
  | tee "$OUT/sweep.log" | tail -14
echo "sweep rc=${PIPESTATUS[0]}"
VARIANT=$(python3 -c "import json; print(json.load(open('$OUT/gemv_variants.json'))['best_variant'])" 2>/dev/null \
  || echo base)
step "bench decode 32K / 64K (NF4 GEMV variant $VARIANT)"
left=$(( 530 - ($(date +%s) - T0) ))
OMNIVIDEO_NF4_VARIANT=$VARIANT timeout $(( left < 190 ? left : 190 )) python3 -m omnivideo bench decode \
  --contexts 32768 --contexts 65536 --stream-context 0 --out "$OUT/decode" 2>&1 | grep -v "^\s*$" \
  | tee "$OUT/bench.log" | tail -30
echo "bench rc=${PIPESTATUS[0]}"
python3 - "$OUT/decode/decode.json" <<'PY' 2>&1 | tee -a "$OUT/bench.log"
import json, sys
r = json.load(open(sys.argv[1]))
print("variant", r.get("nf4_variant"), "copy GB/s", r["bandwidth"]["measured_copy_GBps"], "acceptance", r["acceptance"])
for row in r["results"]:
    print(row["context"], row["variant"], row.get("ms_per_token"), "ms", row.get("x_floor"), "x floor")
k = r.get("kernels_per_token", {})
print("kernels/token", {n: k[n]["total"] for n in ("fused", "unfused") if n in k} or k)
print("breakdown", {n: r.get("breakdown", {}).get(n) for n in ("nf4_matmuls", "lm_head")})
PY
step "done in $(( $(date +%s) - T0 )) s"
