#!/usr/bin/env bash
# One call on the GPU box for issue 17: a random-weight 7B checkpoint on disk, a video of 240K visual tokens,
# `ask --json --gpu-memory 16` on it twice (cold: ingest with the KV in host memory; warm, new process: the
# stored prefix loaded straight to host memory), then `bench cache` at 64K tokens (page cache dropped).
#   run: bash scripts/gpu/long_video.sh [ask|cache|all]     (carry .whl)
set -uo pipefail
source scripts/gpu/preamble.sh
what=${1:-all}
step env
record_env
export PYTHONFAULTHANDLER=1   # a step killed by its timeout (SIGABRT) prints where every thread was
step "GPU tests of the host-memory path"
python3 -m pytest -q -p no:cacheprovider tests/engine/test_layer_stager.py tests/engine/test_host_rounds.py 2>&1 | tail -2
step "random 7B checkpoint"
python3 scripts/gpu/random_checkpoint.py /tmp/r7b 2>&1 | tail -1
if [ "$what" != cache ]; then
  step "a 384 s 728x672 video: 768 frames at 2 fps, 624 tokens per frame pair (240K tokens: a 13 GiB KV, over a 16 GiB budget with the weights)"
  python3 -c "from pathlib import Path; from omnivideo.app.sample_video import make_sample_video as m; print(m(Path('/tmp/long.mp4'), seconds=384, fps=4.0, size=(728, 672)))"
  opts=(--model /tmp/r7b --gpu-memory 16 --total-pixels 400000000 --json --max-new-tokens 16)
  python3 -m omnivideo --data-dir /tmp/ovd probe /tmp/long.mp4 --model /tmp/r7b --gpu-memory 16 \
    --total-pixels 400000000 --json > "$OUT/probe.json"; echo "probe rc=$?"; python3 -c "import json; d=json.load(open('$OUT/probe.json')); print({k: d.get(k) for k in ('visual_tokens', 'kv_bytes', 'weights_bytes', 'gpu_estimate_bytes', 'kv_placement')})"
  for turn in cold warm; do
    step "ask ($turn)"
    start=$SECONDS
    timeout -s ABRT 200 python3 -m omnivideo --verbose --data-dir /tmp/ovd ask /tmp/long.mp4 "What happens at [02:00]? ($turn)" "${opts[@]}" \
      > "$OUT/ask_$turn.json" 2> "$OUT/ask_$turn.err"
    echo "ask rc=$? in $((SECONDS - start)) s (model load included)"; tail -30 "$OUT/ask_$turn.err" | cut -c1-300
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print({k: d[k] for k in ('cache_hit','tokens','timings','memory')})" "$OUT/ask_$turn.json"
  done
fi
if [ "$what" != ask ]; then
  step "bench cache at 64K tokens (random 7B, NF4; page cache dropped before the warm run)"
  timeout 400 python3 -m omnivideo bench cache --model /tmp/r7b --tokens 65536 --device cuda --repeats 1 \
    --disk-gib 4 --out "$OUT/cache" 2>&1 | tail -3
fi
step done
