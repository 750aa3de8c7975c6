#!/usr/bin/env bash
# Training of the synthetic-video checkpoint on the GPU box, one time-boxed stage per call (< 9 minutes),
# resumable: state lives in /tmp/runs/<name> on the box (a call that follows within the warm window finds
# it); what comes back under $OUT: the loss curve, the held-out eval, and the exported model as one tar.
#   run: bash scripts/gpu/train_synth.sh NAME STAGE [extra train.run options...]
#   e.g. bash scripts/gpu/train_synth.sh a A --batch 8 --micro-batch 8 --max-minutes 8
set -uo pipefail
source scripts/gpu/preamble.sh
name=$1; stage=$2; shift 2
run=/tmp/runs/$name
step "env"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
step "train $name (stage $stage) $*"
if [ -f "$run/state.pt" ]; then
  python3 -m omnivideo.train.run --out "$run" --resume "$@" > "$OUT/train_$name.log" 2>&1
else
  python3 -m omnivideo.train.run --stage "$stage" --out "$run" --device cuda "$@" > "$OUT/train_$name.log" 2>&1
fi
echo "train rc=$?"
grep -v "it/s\]\|s/it\]" "$OUT/train_$name.log" | tail -4 | cut -c1-1500
for f in loss_curve.json loss_curve.png eval.json summary.json; do [ -f "$run/$f" ] && cp "$run/$f" "$OUT/${name}_$f"; done
[ -d "$run/model" ] && tar -cf "$OUT/${name}_model.tar" -C "$run" model && ls -la "$OUT/${name}_model.tar"
step done
