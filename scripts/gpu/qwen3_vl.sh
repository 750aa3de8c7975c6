#!/usr/bin/env bash
# Qwen3-VL on the GPU box (issue 19), one call, ~7 min on one H200:
#  1. processor parity where torchvision exists: our frames -> inputs and our prompt (with `<t seconds>` text)
#     against transformers' Qwen3VLVideoProcessor / Qwen3VLProcessor (tests/video/test_qwen3_vl_processor.py);
#  2. the engine on CUDA: tiny-qwen3-vl greedy tokens = generate (dense, sparse at gamma 1), chunked DeepStack
#     prefill = one-shot forward, and the CLI path (tests/engine/test_qwen3_vl_engine.py, tests/test_qwen3_vl_cli.py);
#  3. tiny-qwen3-vl in NF4 through the app (load, fused rewrites, ask --json cold and warm);
#  4. `bench decode --family qwen3_vl` at Qwen3-VL-8B shapes (random weights, NF4): ms/token at 32K/64K vs the
#     bandwidth floor and HF generate, KV bytes per token (144 KiB expected).
#   run: bash scripts/gpu/qwen3_vl.sh      (carry [".whl"]: bitsandbytes)
# Not here yet: cold TTFT at 8B shapes vs transformers + bitsandbytes (bench ingest is Qwen2.5-VL-only so far).
# Every step is under `timeout` and may fail without stopping the next; logs and JSON land in $OUT.
set -uo pipefail
source scripts/gpu/preamble.sh
T0=$(date +%s)
record_env
step "tests: processor parity (torchvision), engine parity and CLI on CUDA"
timeout 240 python3 -m pytest -q -p no:cacheprovider -rs tests/video/test_qwen3_vl_processor.py \
  tests/engine/test_qwen3_vl_engine.py tests/test_qwen3_vl_cli.py tests/video/test_video_parity.py 2>&1 \
  | tee "$OUT/qwen3_vl_tests.log" | tail -15
echo "tests rc=${PIPESTATUS[0]}"
step "tiny-qwen3-vl in NF4 through the app: cold and warm ask --json"
HOME_DIR=$(mktemp -d); export OMNIVIDEO_HOME=$HOME_DIR
timeout 120 python3 - <<'PY' 2>&1 | tee "$OUT/qwen3_vl_app.log" | tail -12
import json, subprocess, sys, pathlib
sys.path.insert(0, "tests")
from conftest import make_clip
video = make_clip(pathlib.Path("/tmp/qwen3_vl_clip.mp4"), seconds=4, seed=3)
runs = []
for _ in range(2):
    out = subprocess.run([sys.executable, "launcher.py", "ask", str(video), "What happens?", "--model", "tiny-qwen3-vl",
                          "--quant", "nf4", "--json", "--max-new-tokens", "8"], capture_output=True, text=True)
    print("rc", out.returncode, out.stderr[-600:])
    runs.append(json.loads(out.stdout))
print(json.dumps({k: runs[0].get(k) for k in ("cache_hit", "timings", "tokens", "decode")}))
print("warm == cold:", runs[1]["answer"] == runs[0]["answer"], "hit:", runs[1]["cache_hit"])
PY
echo "app rc=${PIPESTATUS[0]}"
step "bench decode at Qwen3-VL-8B shapes (NF4): 32K / 64K, vs floor and HF generate"
timeout 300 python3 -m omnivideo bench decode --family qwen3_vl --contexts 32768 65536 --stream-context 0 \
  --new-tokens 32 --out "$OUT/qwen3_vl_decode" 2>&1 | tee "$OUT/qwen3_vl_decode.log" | grep -v "^\s*$" | tail -30
echo "bench rc=${PIPESTATUS[0]}"
step "done in $(( $(date +%s) - T0 )) s"
