#!/usr/bin/env bash
# One call on the GPU box for issue #5's decode numbers: the decode loop's gpu-marked tests (graphs give
# the same greedy tokens as eager; fused text norms and rotary equal transformers'; NF4 GEMV, fused q|k|v;
# the one-launch tail append) and `bench decode` (8K-128K, ours
# dense / slimmed / HF generate, the 256K host-memory prefix under a 16 GiB cap).
#   run: bash scripts/gpu/decode.sh      (with .whl carried)
# Expected: ~6 min. Everything lands under $OUT: decode/{decode.json,report.md,decode.png} -> docs/benchmarks/decode/.
set -uo pipefail
source scripts/gpu/preamble.sh
step() { echo "=== $1 ($(date +%T))"; }
T0=$(date +%s)
step "decode tests on CUDA (gpu-marked: CUDA graphs vs eager, fused text norms, decode kernel)"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs tests/engine/test_decode_graph.py tests/engine/test_text_norm.py \
  tests/engine/test_slim_decode.py tests/engine/test_text_rotary_hook.py tests/engine/test_nf4_linear.py \
  tests/engine/test_nf4_fusion.py tests/engine/test_text_mlp.py tests/kernels/test_tail_append.py tests/kernels/test_decode_attention.py \
  tests/kernels/test_text_rotary.py tests/kernels/test_nf4_lut.py 2>&1 | tee "$OUT/decode_tests.log" | tail -8
echo "tests rc=${PIPESTATUS[0]}"
timeout 90 python3 -m pytest -q -p no:cacheprovider -rs -m gpu tests/kernels/test_nf4_gemv.py 2>&1 \
  | tee -a "$OUT/decode_tests.log" | tail -4
echo "tests rc=${PIPESTATUS[0]}"
step "bench decode"
timeout 290 python3 -m omnivideo bench decode --out "$OUT/decode" 2>&1 | tee "$OUT/bench_decode.log" \
  | grep -v "^\s*$" | tail -40
echo "bench rc=${PIPESTATUS[0]}"
step "done in $(( $(date +%s) - T0 )) s"
