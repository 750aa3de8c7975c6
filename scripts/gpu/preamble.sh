# Sourced by every GPU-box script: $OUT, the carried wheels (.whl: bitsandbytes, sqlite-utils, xxhash)
# installed into /tmp/site, and the environment every step runs under.
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRITON_F32_DEFAULT=ieee
export OPENCV_LOG_LEVEL=SILENT OPENCV_FFMPEG_LOGLEVEL=-8
step() { echo "=== $1 ($(date +%T), ${SECONDS}s)"; }
# The GPU, the driver and the library versions of this run, into $OUT/env.txt (and on the console).
record_env() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/env.txt"
  nproc | sed 's/^/cpu cores: /' | tee -a "$OUT/env.txt"
  python3 - <<'PY' 2>&1 | tee -a "$OUT/env.txt"
import torch, triton, transformers, bitsandbytes, cv2
print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__,
      "transformers", transformers.__version__, "bitsandbytes", bitsandbytes.__version__, "cv2", cv2.__version__)
try:
    import matplotlib; print("matplotlib", matplotlib.__version__)
except ImportError:
    print("no matplotlib: plots are re-rendered on the CPU machine (--from-json)")
PY
}
