#!/usr/bin/env bash
# One call on the GPU box for issue #5's decode numbers: the decode loop's gpu-marked tests (graphs give
# the same greedy tokens as eager; fused text norms equal transformers') and `bench decode` (8K-128K, ours
# dense / slimmed / HF generate, the 256K host-memory prefix under a 16 GiB cap).
#   run: bash scripts/gpu/decode.sh      (with .whl carried)
# Expected: ~4 min. Everything lands under $OUT: decode/{decode.json,report.md,decode.png} -> docs/benchmarks/decode/.
set -uo pipefail
source scripts/gpu/preamble.sh
step() { echo "=== $1 ($(date +%T))"; }
T0=$(date +%s)
step "decode tests on CUDA (gpu-marked: CUDA graphs vs eager, fused text norms, decode kernel)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/engine/test_decode_graph.py tests/engine/test_text_norm.py \
  tests/engine/test_slim_decode.py 2>&1 | tee "$OUT/decode_tests.log" | tail -8
echo "tests rc=${PIPESTATUS[0]}"
step "bench decode"
timeout 330 python3 -m omnivideo_app.bench.decode --out "$OUT/decode" 2>&1 | tee "$OUT/bench_decode.log" \
  | grep -v "^\s*$" | tail -40
echo "bench rc=${PIPESTATUS[0]}"
step "done in $(( $(date +%s) - T0 )) s"
