#!/usr/bin/env bash
# One call on the GPU box (device tool): carried wheels, GPU-marked tests, kernel/engine tests on
# CUDA, the tiny model end to end in NF4, and the benchmarks. Everything lands under $OUT.
#   run: bash scripts/gpu_check.sh      (with .whl carried: bitsandbytes, sqlite-utils, xxhash)
set -uo pipefail
source scripts/gpu/preamble.sh
step() { echo "=== $1 ($(date +%T))"; }
step env
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/env.txt"
python3 - <<'PY' | tee -a "$OUT/env.txt"
import torch, triton, transformers, bitsandbytes, cv2
print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__,
      "transformers", transformers.__version__, "bitsandbytes", bitsandbytes.__version__, "cv2", cv2.__version__)
print("sdpa backends: flash", torch.backends.cuda.flash_sdp_enabled(), "cudnn", torch.backends.cuda.cudnn_sdp_enabled())
PY
which ffmpeg || echo "no ffmpeg here: tests that generate H.264/HEVC/VP9 files are deselected"
step "bf16 kernel tests (gpu-marked; the fp32/fp16 ones autotune every shape on a GPU: minutes) + processor parity"
timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/kernels --timeout 200 2>&1 | tee "$OUT/gpu_kernels.log" | tail -5
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/video/test_video_processor.py 2>&1 | tail -5 | tee "$OUT/gpu_video.log"
step "engine tests on CUDA (tiny model: parity with generate, sparse prefill, cache)"
timeout 300 python3 -m pytest -q -p no:cacheprovider tests/engine --timeout 240 2>&1 | tee "$OUT/gpu_engine.log" | tail -15
step "tiny model, NF4 on CUDA, through the CLI"
python3 - <<'PY' > /tmp/clip.log 2>&1
import sys; sys.path.insert(0, "tests")
from pathlib import Path
from conftest import make_clip
make_clip(Path("/tmp/clip.mp4"), seconds=4, fps=10, size=(320, 240), seed=3)
PY
for att in dense balanced; do
  python3 launcher.py --data-dir /tmp/ovd ask /tmp/clip.mp4 "What happens?" --model tiny --quant nf4 \
    --attention $att --json --max-new-tokens 8 > "$OUT/tiny_nf4_$att.json" 2> "$OUT/tiny_nf4_$att.err"
  echo "$att rc=$?"; head -c 600 "$OUT/tiny_nf4_$att.json"; cat "$OUT/tiny_nf4_$att.err"
done
step done
