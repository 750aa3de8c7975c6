#!/usr/bin/env bash
# One call on the GPU box (one H200, about 7-8 min): OmniSparse selection on learned attention (issue 18).
#  1. the sparse-prefill kernel tests on CUDA (bf16 gpu-marked + fp32/fp16 through the real compiler): the
#     every-key estimate, the flat-heads plan and select kernels, the block-sparse attention;
#  2. the estimate's cost at 32K / 64K keys (7B shapes, bf16, one 4,096-query chunk at the end of the prefix):
#     every-key vs block-mean keys vs the chunk's attention (dense through our kernel, and SDPA);
#  3. a 192 s held-out synth clip (48K visual tokens) captured on the GPU, then `bench prefill-selection` on it
#     (Triton path; balanced / fast x first rule / flat heads / shipped; recall counted on sparse layers only);
#  4. `bench accuracy` on 6 held-out 192 s clips (needle questions): dense, balanced, fast, and dense with
#     --gamma-decode 0.95 (decode slimming), --quant none (the checkpoint's bf16 weights);
#  5. time permitting (< 7 min used): a 70 s training-aware fine-tune smoke from the shipped checkpoint (stage B1
#     clips, --sparse-gamma 0.95: compiled FlexAttention in the loop): s/step and the logged sparse_density;
#  6. a summary: accuracy deltas vs dense and the prefill's work density per preset, the per-layer table.
#   run: bash scripts/gpu/sparse_selection.sh      (no wheels needed: --quant none)
# Everything lands under $OUT: selection/{selection.json,selection.md} -> docs/benchmarks/prefill/synth-48k/,
#   accuracy_*/accuracy.json -> docs/benchmarks/accuracy/sparse-48k/, estimate_cost.json, *.log.
set -uo pipefail
source scripts/gpu/preamble.sh
step env
record_env

step "sparse-prefill kernel tests on CUDA (estimate, plan/select, block-sparse attention, e2e, training flex)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs tests/kernels/test_estimate.py \
  tests/kernels/test_sparse_prefill_e2e.py tests/kernels/test_block_sparse_attention.py \
  tests/train/test_sparse_training.py 2>&1 \
  | tee "$OUT/kernel_tests.log" | tail -8
echo "kernel tests rc=${PIPESTATUS[0]}"

step "estimate cost at 32K / 64K keys (Hq 28, Hkv 4, d 128, bf16, a 4,096-query chunk)"
timeout 90 python3 - "$OUT/estimate_cost.json" <<'PY' 2>&1 | tee "$OUT/estimate_cost.log" | tail -8
import json, sys, dataclasses, torch
from triton.testing import do_bench
from omnivideo.kernels.sparse_prefill.estimate import estimate
from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams, build_block_lists
from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention
rows = []
for nk in (32768, 65536):
    q = torch.randn(28, 4096, 128, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(4, nk, 128, device="cuda", dtype=torch.bfloat16) for _ in "kv")
    q0, scale = nk - 4096, 128 ** -0.5
    row = {"keys": nk}
    for name, params in (("every_key", SparseParams()), ("pooled_keys", SparseParams(pooled_keys=True))):
        row[name + "_ms"] = do_bench(lambda: estimate(q, k, q_offset=q0, params=params, scale=scale), return_mode="median")
        est = estimate(q, k, q_offset=q0, params=params, scale=scale)
        row[name + "_plan_ms"] = do_bench(lambda: build_block_lists(est, q_offset=q0, Nk=nk, params=params), return_mode="median")
    full = build_block_lists(estimate(q, k, q_offset=q0, params=SparseParams(), scale=scale), q_offset=q0, Nk=nk,
                             params=SparseParams(), force_density=1.0)
    row["dense_ours_ms"] = do_bench(lambda: block_sparse_attention(q, k, v, full, q_offset=q0, scale=scale), return_mode="median")
    kk, vv = (x.repeat_interleave(7, 0) for x in (k, v))
    mask = torch.ones(4096, nk, dtype=torch.bool, device="cuda").tril(q0)
    row["sdpa_masked_ms"] = do_bench(lambda: torch.nn.functional.scaled_dot_product_attention(
        q[None], kk[None], vv[None], attn_mask=mask, scale=scale), return_mode="median")
    row["every_key_over_dense_ours"] = row["every_key_ms"] / row["dense_ours_ms"]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))
    rows.append(row)
open(sys.argv[1], "w").write(json.dumps(rows, indent=1))
PY
echo "estimate cost rc=${PIPESTATUS[0]}"

step "held-out set: 6 synth clips of 192 s (48K visual tokens), seeds 1e9+600..605, needle questions"
timeout 120 python3 - <<'PY'
from pathlib import Path
from omnivideo.synth.heldout import EVAL_SEED_BASE, write_heldout
rows = write_heldout(Path("/tmp/heldout192"), range(EVAL_SEED_BASE + 600, EVAL_SEED_BASE + 606), seconds=192,
                     kinds=("needle",))
print(len(rows), "questions;", rows[0]["video"], rows[0]["question"], rows[0]["answer"])
PY

step "capture the first clip on the GPU (every layer, bf16) -> bench prefill-selection (Triton path)"
Q=$(python3 -c "import json; r=json.loads(open('/tmp/heldout192/questions.jsonl').readline()); print(r['question'])")
V=/tmp/heldout192/$(python3 -c "import json; print(json.loads(open('/tmp/heldout192/questions.jsonl').readline())['video'])")
timeout 90 python3 -m omnivideo bench capture "$V" --model synth --quant none --question "$Q" --answer-tokens 4 \
  --layers 0 1 2 3 4 5 --data-dir /tmp/ovd_sel --out /tmp/cap192.safetensors > "$OUT/capture.log" 2>&1
echo "capture rc=$?"; tail -2 "$OUT/capture.log" | cut -c1-400
timeout 150 python3 -m omnivideo bench prefill-selection /tmp/cap192.safetensors --out "$OUT/selection" \
  > "$OUT/selection.log" 2>&1
echo "selection rc=$? (${SECONDS}s)"
grep -E "\| (balanced|fast) \| shipped" "$OUT/selection/selection.md"

accuracy() {  # name timeout extra-args...
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 -m omnivideo --data-dir "/tmp/acc_$name" bench accuracy /tmp/heldout192/questions.jsonl \
    --model synth --quant none --max-new-tokens 8 --out "$OUT/accuracy_$name" "$@" > "$OUT/accuracy_$name.log" 2>&1
  echo "accuracy $name rc=$? (${SECONDS}s)"
  tail -2 "$OUT/accuracy_$name.log"
}
step "bench accuracy on the 192 s set: dense, balanced, fast, dense + gamma_decode 0.95"
accuracy dense 90 --attention dense
accuracy balanced 90 --attention balanced
accuracy fast 90 --attention fast
accuracy slim95 90 --attention dense --gamma-decode 0.95

if [ "$SECONDS" -lt 420 ]; then
  step "training-aware fine-tune smoke: stage B1 clips from the shipped synth, --sparse-gamma 0.95, 70 s"
  timeout 120 python3 -m omnivideo.train.run --stage B1 --out /tmp/b1_sparse --init omnivideo/checkpoints/synth \
    --sparse-gamma 0.95 --max-minutes 1.2 --eval-videos 0 --log-every 5 > "$OUT/train_sparse.log" 2>&1
  echo "train rc=$?"; tail -3 "$OUT/train_sparse.log" | cut -c1-300
  cp /tmp/b1_sparse/summary.json "$OUT/train_sparse_summary.json" 2>/dev/null
  tail -c 1500 /tmp/b1_sparse/loss_curve.json 2>&1 | tee "$OUT/train_sparse_curve_tail.txt"; echo
else
  echo "skipping the training-aware smoke (${SECONDS}s used)"
fi

step summary
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
runs = {}
for name in ("dense", "balanced", "fast", "slim95"):
    p = out / f"accuracy_{name}" / "accuracy.json"
    if p.exists():
        runs[name] = json.loads(p.read_text())
base = runs.get("dense", {}).get("summary", {}).get("accuracy")
for name, r in runs.items():
    s = r["summary"]
    work = [row["sparse"]["work_density"] for row in r["rows"] if row.get("sparse") and row["sparse"].get("work_density")]
    kept = [row["decode"]["kept_visual_share"] for row in r["rows"] if row.get("decode")]
    delta = "" if base is None else f", {100 * (s['accuracy'] - base):+.1f} points vs dense"
    print(f"{name}: {s['accuracy']} of {s['n']} (complete {r['complete']}){delta}; prefill work density "
          f"{sum(work) / len(work) if work else None}; decode kept visual share {sum(kept) / len(kept) if kept else None}")
sel = out / "selection" / "selection.json"
if sel.exists():
    for row in json.loads(sel.read_text())["rows"]:
        if row["variant"] == "shipped":
            rec = f"{row['recall_mean']:.3f} / {row['recall_p5']:.3f}" if row["sparse_layer"] else "n/a (dense)"
            print(f"{row['preset']} layer {row['layer']}: density {row['density']:.3f}, recall {rec}, "
                  f"fallbacks {row['fallbacks']}/{row['chunks_estimated']}")
PY
step done
