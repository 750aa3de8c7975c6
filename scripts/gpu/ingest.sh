#!/usr/bin/env bash
# One call on the GPU box: the pipelined ingest's tests on CUDA, then `bench ingest` (ours dense/balanced vs
# transformers + bitsandbytes NF4 at 8K-64K visual tokens, and the 1080p H.264 end to end). About 4-5 min.
#   run: bash scripts/gpu/ingest.sh     (carry .whl and .carry: the GPU box has no ffmpeg to make the video)
#   the video, made on a CPU machine: ffmpeg -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=120 \
#     -c:v libx264 -preset veryfast -crf 40 -g 250 -pix_fmt yuv420p .carry/ingest_1080p.mp4   (15 MB)
set -uo pipefail
source scripts/gpu/preamble.sh
step env
record_env
ls -la .carry/ 2>&1 | tee -a "$OUT/env.txt" || echo "no .carry/: the end-to-end run is skipped"

step "pipelined ingest tests on CUDA (tiny model: stages, cancel, look-ahead; bit identity is a CPU test)"
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/engine/test_ingest_pipeline.py 2>&1 \
  | tee "$OUT/ingest_tests.log" | tail -15
echo "tests rc=${PIPESTATUS[0]}"

step "bench ingest (random Qwen2.5-VL-7B: build + NF4 ~1 min, then 8K-64K x ours dense/balanced/HF, then e2e)"
timeout 230 python3 -m omnivideo bench ingest --out "$OUT/ingest" > "$OUT/bench_ingest.log" 2>&1
rc=$?
echo "bench rc=$rc (124 = timed out: ingest.json holds the sizes finished so far)"
grep -v "^|" "$OUT/bench_ingest.log" | grep -iv "warn" | tail -25
[ $rc -ne 0 ] && tail -40 "$OUT/bench_ingest.log"

step summary
python3 scripts/gpu/ingest_summary.py "$OUT/ingest/ingest.json" || echo "no ingest.json"
step done
