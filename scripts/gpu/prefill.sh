#!/usr/bin/env bash
# One call on the GPU box for issue #4's remaining parts: the end-to-end prefill bench (random 7B,
# NF4, 32K/64K, dense vs sparse, the dense backends per layer), the gpu-marked and CUDA runs of the
# tests this work touched, and a `bench capture` smoke (tiny model on CUDA -> kernel bench --qk).
#   run: bash scripts/gpu/prefill.sh      (with .whl carried: bitsandbytes, sqlite-utils, xxhash)
# Expected: ~4 min; worst case, every step at its timeout: 450 s. Everything lands under $OUT:
#   prefill_e2e/{e2e.json,e2e.md,e2e.png} -> copy to docs/benchmarks/prefill/; *.log for debugging.
set -uo pipefail
source scripts/gpu/preamble.sh
step() { echo "=== $1 ($(date +%T))"; }
T0=$(date +%s)

step env
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/env.txt"
timeout 20 python3 - <<'PY' 2>&1 | tee -a "$OUT/env.txt"
import torch, triton, transformers, bitsandbytes
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
      "triton", triton.__version__, "transformers", transformers.__version__, "bitsandbytes", bitsandbytes.__version__)
print("sdpa backends: flash", torch.backends.cuda.flash_sdp_enabled(), "cudnn", torch.backends.cuda.cudnn_sdp_enabled(),
      "mem_efficient", torch.backends.cuda.mem_efficient_sdp_enabled())
PY

step "end-to-end prefill bench (random Qwen2.5-VL-7B, NF4, 32K + 64K; JSON after each length)"
# INFO logs show which dense backend omnivideo/engine/attention.py picked and why (checks, failures)
timeout 200 python3 - --out "$OUT/prefill_e2e" <<'PY' 2>&1 | tee "$OUT/prefill_e2e.log" | grep -v "^\s*$" | tail -40
import logging, sys
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("omnivideo.engine.attention").setLevel(logging.INFO)
from omnivideo.bench.prefill.e2e import main
main(sys.argv[1:])
PY
echo "prefill_e2e rc=${PIPESTATUS[0]} (124 = timed out; e2e.json keeps the finished lengths)"
ls -la "$OUT/prefill_e2e" 2>&1 | tail -5

step "tests touched by this work, on CUDA (gpu-marked bf16 dense backends; capture on CUDA; engine parity)"
timeout 90 python3 -m pytest -q -p no:cacheprovider -rs -s tests/engine/test_attention_plugin.py \
  tests/bench/test_capture.py -k "not prefill_bench_runs" \
  "tests/engine/test_engine_parity.py::test_greedy_tokens_equal_hf_generate[0]" \
  tests/engine/test_engine_parity.py::test_multi_turn_equals_rerunning_the_conversation 2>&1 \
  | tee "$OUT/tests.log" | grep -E "usable|passed|failed|error|Error|assert" | tail -25
echo "tests rc=${PIPESTATUS[0]}"

step "bench capture smoke: tiny model (bf16 + NF4 on CUDA), a generated clip -> kernel bench --qk"
timeout 10 python3 - <<'PY' 2>&1 | tail -3
import sys; sys.path.insert(0, "tests")
from pathlib import Path
from conftest import make_clip
make_clip(Path("/tmp/prefill_clip.mp4"), seconds=6, fps=10, size=(448, 336), seed=3)
PY
timeout 60 python3 -m omnivideo bench capture /tmp/prefill_clip.mp4 --model tiny --data-dir /tmp/ovd_prefill \
  --layers 0 1 --out "$OUT/qk_tiny.safetensors" 2>&1 | tee "$OUT/capture.log" | tail -5
echo "capture rc=${PIPESTATUS[0]}"
timeout 45 python3 -m omnivideo bench prefill --qk "$OUT/qk_tiny.safetensors" --densities 0.5 \
  --out "$OUT/qk_bench" 2>&1 | tee "$OUT/qk_bench.log" | tail -12
echo "kernel bench on capture rc=${PIPESTATUS[0]}"
step "done in $(( $(date +%s) - T0 )) s"
