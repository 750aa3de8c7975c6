# Sourced by every GPU-box script: $OUT, the carried wheels (.whl: bitsandbytes, sqlite-utils, xxhash)
# installed into /tmp/site, and the environment every step runs under.
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRITON_F32_DEFAULT=ieee
