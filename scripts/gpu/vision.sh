#!/usr/bin/env bash
# Vision tower (issue 7) on the GPU box: bf16 kernel tests (varlen attention, RMSNorm, rotary, SiLU*up),
# vision-tower parity with transformers' sdpa (tiny on CUDA + random 7B tower in bf16, our attention
# alone and the fused blocks), a diagnostic timing of the fused elementwise kernels against
# transformers' ops at the 32K shape, then `bench vision` (32K first, then 16K and 8K visual tokens;
# ours vs sdpa). Logs and the bench's JSON/report/plot land under $OUT; copy $OUT/vision/* to
# docs/benchmarks/vision/. Expected ~150-200 s, at most ~285 s (step limits 45 + 110 + 30 + 90 s); a
# failing step does not stop the next ones, and the bench rewrites its JSON after every size, so a
# timeout still leaves the sizes done.
#   run: bash scripts/gpu/vision.sh      (with .whl carried: bitsandbytes, sqlite-utils, xxhash)
set -uo pipefail
source scripts/gpu/preamble.sh
T0=$(date +%s)
step() { echo "=== $1 ($(date +%T), +$(( $(date +%s) - T0 )) s)"; }
status() { echo "--- $1: rc=$2" | tee -a "$OUT/vision_status.txt"; }

step env
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/vision_env.txt"
python3 - <<'PY' 2>&1 | tee -a "$OUT/vision_env.txt"
import torch, triton, transformers
print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__,
      "transformers", transformers.__version__)
from omnivideo.engine.fused.vision_attention import VISION_ATTN_NAME, register_vision_attention
from transformers.utils.generic import is_flash_attention_requested
register_vision_attention()
print("vision attention name", VISION_ATTN_NAME, "-> flash path:",
      is_flash_attention_requested(requested_attention_implementation=VISION_ATTN_NAME))
PY

step "vision kernels: bf16 tests (gpu-marked): varlen attention, rms_norm, vision_rotary, silu_mul"
timeout 150 python3 -m pytest -q -p no:cacheprovider -rs --tb=short -m gpu tests/kernels/test_varlen_attention.py \
  tests/kernels/test_rms_norm.py tests/kernels/test_vision_rotary.py tests/kernels/test_silu_mul.py \
  > "$OUT/vision_kernel_tests.log" 2>&1
status kernel_tests $?
tail -30 "$OUT/vision_kernel_tests.log"

step "vision tower parity on CUDA: tiny (fp32, Triton ieee) and random 7B tower (bf16) vs transformers sdpa; fused blocks"
timeout 110 python3 -m pytest -v -p no:cacheprovider -rs --tb=short --durations=8 \
  tests/engine/test_vision_attention.py tests/engine/test_vision_block.py > "$OUT/vision_parity_tests.log" 2>&1
status parity_tests $?
grep -E "PASSED|FAILED|ERROR|SKIPPED" "$OUT/vision_parity_tests.log" | grep -v "PASSED" | head -30
tail -40 "$OUT/vision_parity_tests.log"

step "fused elementwise kernels vs transformers' ops at 32K visual tokens (diagnostic timings, bf16)"
timeout 30 python3 - "$OUT" > "$OUT/vision_block_kernels.log" 2>&1 <<'PY'
import json, os, sys, torch, triton
from transformers.activations import ACT2FN
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLRMSNorm, apply_rotary_pos_emb_vision
from omnivideo.kernels.layers.rms_norm import add_rms_norm, rms_norm
from omnivideo.kernels.layers.silu_mul import silu_mul
from omnivideo.kernels.layers.vision_rotary import rotary_qk
n, c, h, d, i = 131072, 1280, 16, 80, 3456          # 32K visual tokens; MLP width padded to 3456
bf = dict(device="cuda", dtype=torch.bfloat16)
x, delta = torch.randn(n, c, **bf), torch.randn(n, c, **bf)
norm = Qwen2_5_VLRMSNorm(c).to(**bf)
qkv = torch.randn(n, 3 * c, **bf)
cos, sin = torch.randn(n, d, device="cuda"), torch.randn(n, d, device="cuda")
q_view, k_view, _ = qkv.reshape(n, 3, h, -1).permute(1, 0, 2, 3).unbind(0)
gate_up = torch.randn(n, 2 * i, **bf)
gate, up = gate_up[:, :i].contiguous(), gate_up[:, i:].contiguous()
act = ACT2FN["silu"]
cases = {   # name: (transformers, ours, bytes ours must move)
    "rms_norm": (lambda: norm(x), lambda: rms_norm(x, norm.weight, 1e-6), 2 * n * c * 2),
    "add_rms_norm": (lambda: norm(x + delta), lambda: add_rms_norm(x, delta, norm.weight, 1e-6), 4 * n * c * 2),
    "rotary_qk": (lambda: apply_rotary_pos_emb_vision(q_view, k_view, cos, sin), lambda: rotary_qk(qkv, cos, sin, h),
                  4 * n * c * 2 + 2 * n * d * 4),
    "silu_mul": (lambda: act(gate) * up, lambda: silu_mul(gate_up), 3 * n * i * 2),
}
out = {}
with torch.inference_mode():
    for name, (hf, ours, nbytes) in cases.items():
        t_hf = triton.testing.do_bench(hf, warmup=5, rep=40, return_mode="median")
        t_ours = triton.testing.do_bench(ours, warmup=5, rep=40, return_mode="median")
        out[name] = dict(hf_ms=round(t_hf, 3), ours_ms=round(t_ours, 3), ours_gb_s=round(nbytes / t_ours / 1e6),
                         x32_blocks_saved_ms=round(32 * (t_hf - t_ours), 1))
        print(name, out[name], flush=True)
print("torch", torch.__version__, "triton", triton.__version__, torch.cuda.get_device_name())
json.dump(out, open(os.path.join(sys.argv[1], "vision_block_kernels.json"), "w"), indent=1)
PY
status block_kernels $?
cat "$OUT/vision_block_kernels.log"

step "bench vision: 32K/16K/8K visual tokens, ours vs sdpa (same model and pixels)"
timeout 90 python3 -m omnivideo bench vision --out "$OUT/vision" --tokens 32768 16384 8192 \
  > "$OUT/vision_bench.log" 2>&1
status bench $?
tail -45 "$OUT/vision_bench.log"
ls -la "$OUT/vision" 2>&1
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('tuned', r.get('tuned_configs')); print('acceptance', r.get('acceptance'), 'partial', r.get('partial'))" \
  "$OUT/vision/vision.json" 2>&1

step "done"
cat "$OUT/vision_status.txt"
