#!/usr/bin/env bash
# Vision tower attention (issue 7, part 1) on the GPU box: bf16 varlen kernel tests, vision-tower
# parity with transformers' sdpa (tiny on CUDA + random 7B tower in bf16), then `bench vision`
# (32K first, then 16K and 8K visual tokens; ours vs sdpa). Logs and the bench's JSON/report/plot
# land under $OUT; copy $OUT/vision/* to docs/benchmarks/vision/. Expected ~130 s, at most ~190 s
# (step limits 40 + 55 + 90 s); a failing step does not stop the next ones, and the bench rewrites
# its JSON after every size, so a timeout still leaves the sizes done.
#   run: bash scripts/gpu/vision.sh      (with .whl carried: bitsandbytes, sqlite-utils, xxhash)
set -uo pipefail
source scripts/gpu/preamble.sh
T0=$(date +%s)
step() { echo "=== $1 ($(date +%T), +$(( $(date +%s) - T0 )) s)"; }
status() { echo "--- $1: rc=$2" | tee -a "$OUT/vision_status.txt"; }

step env
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/vision_env.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/vision_env.txt"
import torch, triton, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__,
      "transformers", transformers.__version__)
from engine.vision_attention import VISION_ATTN_NAME, register_vision_attention
from transformers.utils.generic import is_flash_attention_requested
register_vision_attention()
print("vision attention name", VISION_ATTN_NAME, "-> flash path:",
      is_flash_attention_requested(requested_attention_implementation=VISION_ATTN_NAME))
PY

step "varlen kernel: bf16 tests (gpu-marked)"
timeout 40 python3 -m pytest -q -p no:cacheprovider -rs --tb=short -m gpu tests/kernels/test_varlen_attention.py \
  > "$OUT/vision_kernel_tests.log" 2>&1
status kernel_tests $?
tail -25 "$OUT/vision_kernel_tests.log"

step "vision tower parity on CUDA: tiny (fp32, Triton ieee) and random 7B tower (bf16) vs transformers sdpa"
timeout 55 python3 -m pytest -q -p no:cacheprovider -rs --tb=short tests/engine/test_vision_attention.py \
  > "$OUT/vision_parity_tests.log" 2>&1
status parity_tests $?
tail -30 "$OUT/vision_parity_tests.log"

step "bench vision: 32K/16K/8K visual tokens, ours vs sdpa (same model and pixels)"
timeout 90 python3 -m omnivideo_app.bench.vision_tower --out "$OUT/vision" --tokens 32768 16384 8192 \
  > "$OUT/vision_bench.log" 2>&1
status bench $?
tail -45 "$OUT/vision_bench.log"
ls -la "$OUT/vision" 2>&1
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('tuned', r.get('tuned_configs')); print('acceptance', r.get('acceptance'), 'partial', r.get('partial'))" \
  "$OUT/vision/vision.json" 2>&1

step "done"
cat "$OUT/vision_status.txt"
