#!/usr/bin/env bash
# One call on the GPU box after the move to one import root (issue 15): every gpu-marked test, the engine's
# CUDA tests, then `bench decode` and `bench ingest` at 32K / 64K (the sizes the earlier H200 runs report).
#   run: bash scripts/gpu/layout_check.sh       (carry .whl: bitsandbytes, sqlite-utils, xxhash, ...)
# About 9 minutes. Everything lands under $OUT: tests.log, decode/, ingest/ (JSON + report; plots re-rendered
# here with --from-json where the box has no matplotlib).
set -uo pipefail
source scripts/gpu/preamble.sh
step env
record_env
step "gpu-marked tests + the engine's tests on CUDA"
timeout 200 python3 -m pytest -q -p no:cacheprovider -rs --timeout 150 -m gpu tests/kernels tests/engine tests/storage \
  tests/video/test_video_processor.py 2>&1 | tee "$OUT/tests.log" | tail -8
echo "gpu-marked tests rc=${PIPESTATUS[0]}"
timeout 120 python3 -m pytest -q -p no:cacheprovider -rs --timeout 100 tests/engine/test_engine_parity.py \
  tests/engine/test_sparse_prefill_engine.py tests/engine/test_decode_graph.py 2>&1 | tee -a "$OUT/tests.log" | tail -4
echo "engine tests on CUDA rc=${PIPESTATUS[0]}"
step "bench decode (32K, 64K; HF generate baseline)"
timeout 170 python3 -m omnivideo bench decode --contexts 32768 65536 --stream-context 0 --out "$OUT/decode" \
  > "$OUT/bench_decode.log" 2>&1; echo "bench decode rc=$?"
grep "^|" "$OUT/bench_decode.log" | head -20
step "bench ingest (32K, 64K; transformers + bitsandbytes baseline)"
timeout 200 python3 -m omnivideo bench ingest --tokens 32768 65536 --video '' --out "$OUT/ingest" \
  > "$OUT/bench_ingest.log" 2>&1; echo "bench ingest rc=$?"
grep "^|" "$OUT/bench_ingest.log" | head -20
step done
