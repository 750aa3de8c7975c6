#!/usr/bin/env bash
# One call on the GPU box for issue #4's kernels: the gpu-marked (bf16) tests of every attention kernel,
# the tile probe (scripts/gpu/prefill_probe.py) and the full kernel bench + fidelity report
# (`bench prefill`: 16K-128K x densities 5-50%, structured workload recall).
#   run: bash scripts/gpu/prefill_kernels.sh      (with .whl carried)
# Expected: ~5 min. Everything lands under $OUT: prefill_kernels/{results.json,report.md,speedup.png}
#   -> docs/benchmarks/prefill/; *.log for debugging.
set -uo pipefail
source scripts/gpu/preamble.sh
step() { echo "=== $1 ($(date +%T))"; }
T0=$(date +%s)

step "bf16 kernel tests (gpu-marked): block-sparse, estimate, plan, varlen, decode attention"
timeout 200 python3 -m pytest -q -p no:cacheprovider -m gpu tests/kernels/test_block_sparse_attention.py \
  tests/kernels/test_estimate.py tests/kernels/test_sparse_prefill_e2e.py tests/kernels/test_varlen_attention.py \
  tests/kernels/test_decode_attention.py 2>&1 | tee "$OUT/gpu_kernels.log" | tail -6
echo "kernel tests rc=${PIPESTATUS[0]}"

step "probe: tiles at 32K/25% and one sparse chunk call's parts"
timeout 120 python3 scripts/gpu/prefill_probe.py "$OUT/prefill_probe.json" 2>&1 | tee "$OUT/prefill_probe.log" | tail -12
echo "probe rc=${PIPESTATUS[0]}"

step "kernel bench + fidelity (bench prefill)"
timeout 300 python3 -m omnivideo bench prefill --out "$OUT/prefill_kernels" 2>&1 \
  | tee "$OUT/prefill_kernels.log" | grep -v "^\s*$" | tail -45
echo "kernel bench rc=${PIPESTATUS[0]}"
step "done in $(( $(date +%s) - T0 )) s"
