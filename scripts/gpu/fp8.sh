#!/usr/bin/env bash
# One call on the GPU box (one H200, about 5-7 min): FP8 prefill linears (issue 20).
#  1. the FP8 tests on CUDA: row quantization kernel vs reference, `_scaled_mm` vs the emulation on the 7B's
#     shapes, the engine's FP8 prefix prefill (tiny model in bf16);
#  2. `bench ingest` at 32K and 64K visual tokens, dense attention, bf16 vs fp8 prefill linears, against
#     transformers + bitsandbytes NF4 (random Qwen2.5-VL-7B; cold TTFT ratio, issue 20's fp8_* acceptance);
#  3. `bench accuracy` on the shipped synth checkpoint, the same 20 held-out 14 s videos (99 questions), bf16 vs
#     fp8 prefill linears: --quant none (the checkpoint's own bf16 nn.Linear layers: FP8 takes them as they
#     are) and, time permitting, --quant nf4 (NF4 dequantized, then FP8).
#   run: bash scripts/gpu/fp8.sh      (carry .whl: bitsandbytes for the NF4 model and the baseline)
set -uo pipefail
source scripts/gpu/preamble.sh
step env
record_env
python3 -c "import torch; from omnivideo.kernels.fp8.row_quant import fp8_supported; \
print('compute capability', torch.cuda.get_device_capability(), 'fp8 tensor cores', fp8_supported('cuda'))" \
  2>&1 | tee -a "$OUT/env.txt"

step "FP8 tests on CUDA (kernel vs reference, _scaled_mm vs emulation, the engine's FP8 prefill)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/kernels/test_fp8_linear.py tests/engine/test_fp8_prefill.py \
  2>&1 | tee "$OUT/fp8_tests.log" | tail -15
echo "tests rc=${PIPESTATUS[0]}"

step "bench ingest 32K/64K: ours dense bf16 / fp8 vs transformers + bitsandbytes (build + NF4 ~1 min)"
timeout 270 python3 -m omnivideo bench ingest --tokens 32768 --tokens 65536 --preset dense \
  --prefill-linears bf16 --prefill-linears fp8 --video '' --out "$OUT/ingest_fp8" > "$OUT/bench_ingest_fp8.log" 2>&1
rc=$?
echo "bench rc=$rc (124 = timed out: ingest.json holds the sizes finished so far)"
grep -v "^|" "$OUT/bench_ingest_fp8.log" | grep -iv "warn" | tail -12
[ $rc -ne 0 ] && tail -30 "$OUT/bench_ingest_fp8.log"
python3 scripts/gpu/ingest_summary.py "$OUT/ingest_fp8/ingest.json" || echo "no ingest.json"

step "held-out set: 20 synthetic videos of 14 s (seeds 1e9+500..519, OpenCV mp4v: no ffmpeg here)"
python3 - <<'PY'
from pathlib import Path
from omnivideo.synth.heldout import EVAL_SEED_BASE, write_heldout
rows = write_heldout(Path("/tmp/heldout14"), range(EVAL_SEED_BASE + 500, EVAL_SEED_BASE + 520), seconds=14)
print(len(rows), "questions")
PY

accuracy() {  # quant linears timeout
  timeout "$3" python3 -m omnivideo --data-dir /tmp/acc_home bench accuracy /tmp/heldout14/questions.jsonl \
    --model synth --quant "$1" --prefill-linears "$2" --max-new-tokens 12 --out "$OUT/accuracy_$1_$2" \
    > "$OUT/accuracy_$1_$2.log" 2>&1
  echo "accuracy $1 $2 rc=$? (${SECONDS}s)"
  tail -3 "$OUT/accuracy_$1_$2.log"
}
step "bench accuracy: synth, --quant none (bf16 nn.Linear), bf16 vs fp8 prefill linears"
accuracy none bf16 150
accuracy none fp8 150
if [ "$SECONDS" -lt 360 ]; then
  step "bench accuracy: synth, --quant nf4, bf16 vs fp8 prefill linears"
  accuracy nf4 bf16 60
  accuracy nf4 fp8 60
else
  echo "skipping the NF4 pair (${SECONDS}s used)"
fi

step summary
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
for quant in ("none", "nf4"):
    runs = {}
    for linears in ("bf16", "fp8"):
        p = out / f"accuracy_{quant}_{linears}" / "accuracy.json"
        if p.exists():
            runs[linears] = json.loads(p.read_text())
    for linears, r in runs.items():
        s = r["summary"]
        kinds = {k: v["accuracy"] for k, v in s["by_kind"].items()}
        ran = sorted({row.get("linears") for row in r["rows"]})
        print(f"quant {quant}, {linears}: {s['accuracy']} of {s['n']} (complete {r['complete']}), linears ran {ran}, "
              f"ttft cold {s['ttft_s']['cold_mean']} warm {s['ttft_s']['warm_mean']}; {kinds}")
    if len(runs) == 2:
        a, b = runs["bf16"], runs["fp8"]
        same = sum(x["reply"] == y["reply"] for x, y in zip(a["rows"], b["rows"]))
        delta = 100 * (b["summary"]["accuracy"] - a["summary"]["accuracy"])
        print(f"quant {quant}: fp8 - bf16 = {delta:+.1f} points (issue 20: within 0.5), same reply on "
              f"{same}/{min(len(a['rows']), len(b['rows']))} questions")
PY
step done
