#!/usr/bin/env bash
# Diagnostics for issue 5 on the GPU box (~4 min): scripts/gpu/decode_probe.py (decode-step kernel profile,
# NF4 GEMV variants, SASS of the routed GEMV). Carry [".whl"]. Output: $OUT/decode_probe.{json,log}, *.sass.
set -uo pipefail
source scripts/gpu/preamble.sh
echo "=== decode probe ($(date +%T))"
timeout ${PROBE_TIMEOUT:-420} python3 scripts/gpu/decode_probe.py "$@" 2>&1 | grep -v "warnings.warn" \
  | tee "$OUT/decode_probe.log" | tail -80
echo "probe rc=${PIPESTATUS[0]} ($(date +%T))"
