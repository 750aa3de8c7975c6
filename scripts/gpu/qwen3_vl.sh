#!/usr/bin/env bash
# Qwen3-VL on the GPU box (issue 19), one call, at most ~8.5 min on one H200 (BUDGET seconds for the steps; each
# step's own timeout is cut to what is left, a step with < 20 s left is skipped and says so):
#  0. preflight (fail fast, ~20 s): CUDA, triton, bitsandbytes NF4 on the GPU, the bench modules import; if it
#     fails the script stops before building any 8B model;
#  1. GPU-marked Qwen3-VL tests: the 27-block 8B-shape tower fused vs transformers in bf16 (Triton), rotary and
#     varlen kernels at head dim 72, processor parity with Qwen3VLVideoProcessor / Qwen3VLProcessor (torchvision);
#  2. `bench ingest --family qwen3_vl` at 32K and 64K visual tokens: cold TTFT ours (dense, balanced) vs
#     transformers + bitsandbytes NF4 in the same process (random Qwen3-VL-8B, 27-block tower with DeepStack);
#     a timeout keeps the sizes finished (ingest.json is rewritten after each size);
#  3. `bench decode --family qwen3_vl` at 32K: ms/token vs the bandwidth floor and HF generate, KV bytes/token;
#  4. time permitting: the rest of the Qwen3-VL tests on CUDA (engine parity, chunked DeepStack, CLI), then
#     tiny-qwen3-vl in NF4 through the app (cold and warm ask --json).
#   run: bash scripts/gpu/qwen3_vl.sh      (carry [".whl"]: bitsandbytes)
# $OUT at the end (8 files): summary.txt (every step's rc, acceptance lines, the tail of any failed step),
# logs.tgz (all logs with full tracebacks, junit XML, env.txt), ingest.json / ingest_report.md / ingest.png,
# decode.json / decode_report.md / decode.png.
set -uo pipefail
source scripts/gpu/preamble.sh
T0=$(date +%s); BUDGET=${BUDGET:-500}
W="$OUT/work"; mkdir -p "$W"
SUMMARY="$OUT/summary.txt"; : > "$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }

package() {   # at most 8 files in $OUT, whatever happened
  cp "$W/ingest/ingest.json" "$OUT/ingest.json" 2>/dev/null; cp "$W/ingest/report.md" "$OUT/ingest_report.md" 2>/dev/null
  cp "$W/ingest/ingest.png" "$OUT/ingest.png" 2>/dev/null
  cp "$W/decode/decode.json" "$OUT/decode.json" 2>/dev/null; cp "$W/decode/report.md" "$OUT/decode_report.md" 2>/dev/null
  cp "$W/decode/decode.png" "$OUT/decode.png" 2>/dev/null
  [ -f "$OUT/env.txt" ] && mv "$OUT/env.txt" "$W/env.txt"
  say "total $(( $(date +%s) - T0 )) s"
  tar -czf "$OUT/logs.tgz" -C "$W" . 2>/dev/null && rm -rf "$W"
}
trap package EXIT

# run_step NAME SECONDS CMD...: output into $W/NAME.log; rc and, on failure, the log's tail into the summary
run_step() {
  local name=$1 want=$2 t; shift 2
  t=$(( $(left) - 10 )); [ "$want" -lt "$t" ] && t=$want
  if [ "$t" -lt 20 ]; then say "SKIP $name: $(left) s left"; return 99; fi
  step "$name (timeout ${t}s)"
  timeout -k 10 "$t" "$@" > "$W/$name.log" 2>&1
  local rc=$?
  say "$name rc=$rc$([ $rc -eq 124 ] && echo ' (timed out)') at $(( $(date +%s) - T0 )) s"
  if [ $rc -ne 0 ]; then
    { echo "--- tail of $name.log"; grep -v "^\s*$" "$W/$name.log" | grep -iv "warn" | tail -30; } | tee -a "$SUMMARY"
  fi
  return $rc
}
PYTEST=(python3 -m pytest -q -p no:cacheprovider -rs --tb=long)

record_env > /dev/null 2>&1; head -3 "$OUT/env.txt" | tee -a "$SUMMARY"

run_step preflight 60 python3 - <<'PY' || { say "preflight failed: nothing else runs (see the tail above)"; exit 1; }
import torch, triton, transformers, bitsandbytes as bnb
assert torch.cuda.is_available(), "no CUDA device"
print(torch.cuda.get_device_name(0), "torch", torch.__version__, "triton", triton.__version__,
      "transformers", transformers.__version__, "bitsandbytes", bnb.__version__)
from transformers import Qwen3VLForConditionalGeneration  # noqa: F401  (qwen3_vl in this transformers)
import omnivideo.bench.ingest.ingest, omnivideo.bench.decode.decode  # noqa: F401,E401
from omnivideo.bench.random_model import quantize_nf4
layer = torch.nn.Sequential(torch.nn.Linear(256, 256, dtype=torch.bfloat16, device="cuda"))
ref = layer(torch.ones(4, 256, dtype=torch.bfloat16, device="cuda"))
quantize_nf4(layer, torch.bfloat16, torch.device("cuda"))
out = layer(torch.ones(4, 256, dtype=torch.bfloat16, device="cuda"))
err = ((out - ref).float().norm() / ref.float().norm()).item()
assert err < 0.35, f"NF4 layer off by {err}"   # NF4 on random weights: ~0.1
from omnivideo.engine.fused.qwen3_vision_block import fuse_qwen3_vision_blocks
from transformers import Qwen3VLVisionConfig
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLVisionModel
tower = Qwen3VLVisionModel(Qwen3VLVisionConfig(depth=2, hidden_size=64, intermediate_size=128, num_heads=2,
                           out_hidden_size=32, deepstack_visual_indexes=[0])).cuda().eval()
assert fuse_qwen3_vision_blocks(tower) == 2
with torch.inference_mode():
    tower(torch.randn(64, 3 * 2 * 16 * 16, device="cuda"), grid_thw=torch.tensor([[1, 8, 8]], device="cuda"))
print("preflight ok: NF4 rel err", round(err, 4), "| fused Qwen3-VL tower ran on CUDA (Triton)")
PY

run_step gpu_tests 120 "${PYTEST[@]}" -m gpu --junitxml="$W/gpu_tests.xml" tests/engine/test_qwen3_vl_vision.py \
  tests/kernels/test_vision_rotary.py tests/kernels/test_varlen_attention.py tests/video/test_qwen3_vl_processor.py
tail -3 "$W/gpu_tests.log" | tee -a "$SUMMARY"

run_step bench_ingest 250 python3 -m omnivideo --verbose bench ingest --family qwen3_vl --tokens 32768 --tokens 65536 \
  --video '' --out "$W/ingest"
python3 scripts/gpu/ingest_summary.py "$W/ingest/ingest.json" 2>&1 | tee -a "$SUMMARY" || say "no ingest.json"

run_step bench_decode 170 python3 -m omnivideo --verbose bench decode --family qwen3_vl --contexts 32768 \
  --stream-context 0 --new-tokens 32 --out "$W/decode"
python3 - "$W/decode/decode.json" <<'PY' 2>&1 | tee -a "$SUMMARY" || say "no decode.json"
import json, sys
r = json.load(open(sys.argv[1]))
print("decode", r["model"]["id"], "kv_bytes_per_token", r["model"].get("kv_bytes_per_token"), "partial", r.get("partial"))
for x in r["results"]:
    print(x["context"], x["variant"], x.get("error") or f"{x.get('ms_per_token')} ms/token, x_floor {x.get('x_floor')}")
print("acceptance:", r.get("acceptance"))
PY

run_step cuda_tests 120 "${PYTEST[@]}" --junitxml="$W/cuda_tests.xml" tests/engine/test_qwen3_vl_engine.py \
  tests/test_qwen3_vl_cli.py tests/video/test_video_parity.py
tail -3 "$W/cuda_tests.log" | tee -a "$SUMMARY"

export OMNIVIDEO_HOME=$(mktemp -d)
run_step app_nf4 60 python3 - <<'PY'
import json, subprocess, sys, pathlib
sys.path.insert(0, "tests")
from conftest import make_clip
video = make_clip(pathlib.Path("/tmp/qwen3_vl_clip.mp4"), seconds=4, seed=3)
runs = []
for _ in range(2):
    out = subprocess.run([sys.executable, "launcher.py", "--verbose", "ask", str(video), "What happens?", "--model",
                          "tiny-qwen3-vl", "--quant", "nf4", "--json", "--max-new-tokens", "8"], capture_output=True, text=True)
    print("rc", out.returncode, out.stderr[-3000:])
    if out.returncode:
        sys.exit(f"ask --model tiny-qwen3-vl --quant nf4 failed with exit {out.returncode} (stderr above)")
    runs.append(json.loads(out.stdout))
print(json.dumps({k: runs[0].get(k) for k in ("cache_hit", "timings", "tokens", "decode")}))
print("warm == cold:", runs[1]["answer"] == runs[0]["answer"], "hit:", runs[1]["cache_hit"])
assert runs[1]["answer"] == runs[0]["answer"] and runs[1]["cache_hit"]
PY
tail -2 "$W/app_nf4.log" 2>/dev/null | tee -a "$SUMMARY"
