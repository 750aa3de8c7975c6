"""`bench decode`: decode ms/token at 8K-128K context, ours (dense KV, slimmed KV) vs HF `generate`.

Model: a real-size Qwen2.5-VL-7B language model with random weights, NF4 (bitsandbytes), built from
the public config (`decode_model.random_model`). Context: a synthetic prefix KV (iid normal) of N
tokens, 16 text tokens at each end and video tokens between, held in host memory; a question of
`question_tokens` tokens is prefilled over it (streamed layer by layer), then `new_tokens` tokens
are decoded greedily. Variants:
- ours_dense: gamma_decode = 1 (every token kept), decode kernel + CUDA-graph step;
- ours_slim_<g>: mechanism 3 at gamma_decode g. Random weights attend almost uniformly, so about g
  of the visual tokens are kept: this measures speed at that KV size, not the selection's quality
  (docs/benchmarks/slimming/ measures that);
- hf_generate: `model.generate` with the same weights (attention "sdpa") and the same KV in a
  DynamicCache, in the same process.
ms/token is the median interval between streamed tokens after the first two (the first includes the
prefill, the second the step's capture). The bandwidth floor is (weight bytes + KV bytes read per
token) / memory bandwidth (measured device-to-device copy; nominal too where known). A last section
answers a `stream_context`-token prefix held in host memory under a `stream_cap_gb` GPU cap.

    omnivideo bench decode --out docs/benchmarks/decode
    omnivideo bench decode --small --out /tmp/decode      # CPU, tiny model (schema test)
"""
import os
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from omnivideo.engine.attention import ATTN_NAME
from omnivideo.engine.engine import Engine
from omnivideo.engine.stack import CACHE_KWARG
from omnivideo.engine.prefill.question_prefill import host_conversation
from omnivideo.engine.sampling import SamplingParams
from omnivideo.engine.decode.device_budget import packed_kv_budget
from omnivideo.engine.decode.slim_decode import SlimDecodeConfig
from omnivideo.bench.decode.breakdown import measure_bandwidth, step_breakdown
from omnivideo.bench.decode.kernel_count import kernel_counts
from omnivideo.bench.random_model import (SIZES, kv_bytes_per_token, random_model, set_text_attention, synthetic_kv,
                                              weight_bytes_per_token)
from omnivideo.bench.decode.report import report_markdown, write_report
from omnivideo.bench.runner import finish
from omnivideo.errors import ConfigError
from omnivideo.kernels.nf4.nf4_gemv import VARIANT_ENV

NOMINAL_GBPS = {"H100 80GB HBM3": 3350, "H100 PCIe": 2000, "H100 NVL": 3900, "H200": 4800}  # vendor specs
TEXT_ID = 100


@dataclass(frozen=True)
class DecodeBench:
    contexts: tuple[int, ...] = (8192, 32768, 65536, 131072)
    new_tokens: int = 32  # timed decode steps per variant
    question_tokens: int = 32
    gammas: tuple[float, ...] = (1.0, 0.95, 0.5)  # 1.0 is "ours_dense"
    hf: bool = True
    stream_context: int = 262144  # 0 skips the host-memory section
    stream_cap_gb: float = 16.0
    stream_new_tokens: int = 8
    size: str = "7b"
    quant: str = "nf4"
    seed: int = 0

    def __post_init__(self):
        if not self.contexts or min(self.contexts) < 64:
            raise ConfigError(f"contexts must be >= 64 tokens, got {self.contexts}")
        if self.new_tokens < 2 or self.question_tokens < 1:
            raise ConfigError("new_tokens must be >= 2 and question_tokens >= 1")
        if self.size not in SIZES or self.quant not in ("nf4", "none"):
            raise ConfigError(f"size must be {'|'.join(SIZES)} and quant nf4|none, got {self.size}, {self.quant}")


SMALL = DecodeBench(contexts=(256, 512), new_tokens=4, question_tokens=8, stream_context=1024,
                    stream_new_tokens=3, size="tiny")


def _prefix_ids(engine: Engine, n: int) -> list[int]:
    edge = min(16, n // 8)
    return [TEXT_ID] * edge + [engine.video_pad_id] * (n - 2 * edge) + [TEXT_ID] * edge


def _question(bench: DecodeBench) -> list[int]:
    return [TEXT_ID + 1 + i % 50 for i in range(bench.question_tokens)]


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak(device: torch.device) -> int | None:
    return torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None


def _steady_ms(times: list[float], skip: int) -> tuple[float, float]:
    """Median and max of the intervals between streamed tokens, after the first `skip` intervals."""
    steps = [b - a for a, b in zip(times, times[1:])][skip:]
    return round(1000 * statistics.median(steps), 3), round(1000 * max(steps), 3)


def run_ours(engine: Engine, conv, cfg: SlimDecodeConfig, question: list[int], new_tokens: int) -> dict:
    """Generate new_tokens + 2 tokens after `question`; conv is rolled back to its prefix afterwards."""
    engine.slim_decode = cfg
    device = engine.device
    times, t0, prefill_peak = [], time.perf_counter(), None
    for i, _ in enumerate(engine.generate(conv, question, SamplingParams(max_new_tokens=new_tokens + 2), [])):
        times.append(time.perf_counter())
        if i == 0:
            prefill_peak = _peak(device)  # since the caller's reset: the question prefill, selection, packing
            _reset_peak(device)  # decode-time peak from here
    stats = conv.stats["slim"]
    ms, ms_max = _steady_ms(times, skip=1)
    out = {"ms_per_token": ms, "ms_per_token_max": ms_max, "ttft_s": round(times[0] - t0, 4),
           "question_s": round(times[-1] - t0, 4), "kv_read_bytes": stats["packed_bytes"],
           "kv_gpu_bytes": stats.get("decode_device_bytes"), "peak_allocated_bytes": _peak(device),
           "peak_allocated_prefill_bytes": prefill_peak,
           "kept_visual_share": stats["kept_visual_share"], "graph": stats.get("graph", False),
           "offloaded_layers": len(stats["offloaded_layers"])}
    engine.truncate(conv, conv.prefix_len)
    return out


class _Clock:
    """A `generate` streamer that timestamps every put (the prompt first, then each new token)."""

    def __init__(self, device: torch.device):
        self.device, self.times = device, []

    def put(self, value):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.times.append(time.perf_counter())
        if len(self.times) == 2:
            _reset_peak(self.device)

    def end(self):
        pass


def kernels_per_token(engine: Engine, conv, question: list[int], fused: bool) -> dict:
    """GPU kernels (and device copies) per decoded token of the graph-captured step, dense KV: the launch
    count of the step's non-GEMV part is what the fusions cut. conv is rolled back afterwards."""
    engine.slim_decode = SlimDecodeConfig(gamma_decode=1.0, fused_layers=fused)
    gen = engine.generate(conv, question, SamplingParams(max_new_tokens=24), [])
    for _ in range(4):  # past the prefill and the capture
        next(gen)
    counts = kernel_counts(lambda: next(gen), calls=8)
    gen.close()
    engine.truncate(conv, conv.prefix_len)
    return {"total": counts["total"], "top": dict(list(counts["by_name"].items())[:12])}


def run_hf(loaded, n: int, question: list[int], new_tokens: int, seed: int) -> dict:
    """HF `generate` over a DynamicCache holding the same synthetic KV (attention: sdpa)."""
    from transformers import DynamicCache

    device, model = loaded.device, loaded.model
    set_text_attention(model, "sdpa")
    try:
        cache = DynamicCache(config=loaded.text_config)
        for layer, (k, v) in enumerate(synthetic_kv(loaded, n, seed)):
            cache.update(k[None], v[None], layer)
        ids = torch.tensor([[TEXT_ID] * n + question], device=device)
        clock = _Clock(device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **{CACHE_KWARG: cache},
                           max_new_tokens=new_tokens + 2, min_new_tokens=new_tokens + 2, do_sample=False,
                           pad_token_id=0, streamer=clock)
        ms, ms_max = _steady_ms(clock.times, skip=2)
        kv = kv_bytes_per_token(loaded) * cache.get_seq_length()
        return {"ms_per_token": ms, "ms_per_token_max": ms_max, "ttft_s": round(clock.times[1] - t0, 4),
                "question_s": round(clock.times[-1] - t0, 4), "kv_read_bytes": kv, "kv_gpu_bytes": kv,
                "peak_allocated_bytes": _peak(device), "kept_visual_share": 1.0, "graph": False,
                "offloaded_layers": 0}
    finally:
        set_text_attention(model, ATTN_NAME)


def run_stream(engine: Engine, bench: DecodeBench, gamma: float) -> dict:
    """A stream_context-token prefix in host memory, answered under a GPU cap of stream_cap_gb."""
    loaded, device, n = engine.loaded, engine.device, bench.stream_context
    tc = loaded.text_config
    layer_bytes = kv_bytes_per_token(loaded) // tc.num_hidden_layers * n
    cap = None
    if device.type == "cuda":
        torch.cuda.empty_cache()
        cap = int(bench.stream_cap_gb * 2 ** 30)
        torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(device).total_memory)
        # what the app's decode allows next to the weights (16 layers of full KV kept free on a 7B)
        budget = packed_kv_budget(device, layer_bytes, tc.num_attention_heads // tc.num_key_value_heads,
                                  staged_prefill=True)
    else:
        budget = layer_bytes  # CPU: one layer "on the device", the rest staged (exercises the path)
    t0 = time.perf_counter()
    conv = host_conversation(engine, synthetic_kv(loaded, n, bench.seed), _prefix_ids(engine, n), 0)
    setup_s = time.perf_counter() - t0
    cfg = SlimDecodeConfig(gamma_decode=gamma, gpu_kv_budget_gb=budget / 2 ** 30)
    _reset_peak(device)
    try:
        out = run_ours(engine, conv, cfg, _question(bench), bench.stream_new_tokens)
        out["peak_reserved_decode_bytes"] = torch.cuda.max_memory_reserved(device) if device.type == "cuda" else None
    except torch.cuda.OutOfMemoryError as e:
        out = {"error": f"out of GPU memory: {str(e).splitlines()[0]}"}
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
    out.update(context=n, gamma_decode=gamma, cap_bytes=cap, device_kv_budget_bytes=budget,
               host_kv_bytes=conv.cache.nbytes, host_setup_s=round(setup_s, 2))
    return out


def run(bench: DecodeBench, on_progress=None) -> dict:
    """All contexts and variants, then the host-memory section; `on_progress(result)` after each part."""
    import transformers

    t_start = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() and not bench.size.startswith("tiny") else "cpu")
    loaded = random_model(bench.size, device, bench.quant)
    engine = Engine(loaded)
    weights = weight_bytes_per_token(loaded)
    measured = measure_bandwidth(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    result = {"bench": "decode", "config": asdict(bench), "device": name, "torch": torch.__version__,
              "transformers": transformers.__version__,
              "model": {"id": loaded.model_id, "quantization": loaded.quantization, "weight_bytes_per_token": weights,
                        "kv_bytes_per_token": kv_bytes_per_token(loaded)},
              "nf4_variant": os.environ.get(VARIANT_ENV, "base") or "base",
              "bandwidth": {"measured_copy_GBps": round(measured, 1),
                            "nominal_GBps": next((v for k, v in NOMINAL_GBPS.items() if k in name), None)},
              "results": [], "stream": None, "acceptance": {}, "partial": True}
    for n in bench.contexts:
        conv = host_conversation(engine, synthetic_kv(loaded, n, bench.seed), _prefix_ids(engine, n), 0)
        rows = []
        for gamma in bench.gammas:
            row = run_ours(engine, conv, SlimDecodeConfig(gamma_decode=gamma), _question(bench), bench.new_tokens)
            rows.append({"context": n, "variant": "ours_dense" if gamma == 1.0 else f"ours_slim_{gamma}",
                         "gamma_decode": gamma, **row})
        del conv
        if bench.hf:
            try:
                row = run_hf(loaded, n, _question(bench), bench.new_tokens, bench.seed)
            except (RuntimeError, ValueError, TypeError) as e:  # the baseline's failure is a result, not a crash
                row = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            rows.append({"context": n, "variant": "hf_generate", "gamma_decode": None, **row})
        for row in rows:
            if "error" not in row:
                row["floor_ms"] = round(1000 * (weights + row["kv_read_bytes"]) / (measured * 1e9), 3)
                row["x_floor"] = round(row["ms_per_token"] / row["floor_ms"], 2)
        result["results"] += rows
        result["acceptance"] = acceptance(result["results"])
        print(f"context {n}: " + ", ".join(f"{r['variant']} {r.get('ms_per_token', 'error')} ms" for r in rows),
              flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if on_progress is not None:
            on_progress(result)
    if device.type == "cuda":
        n = bench.contexts[0]
        conv = host_conversation(engine, synthetic_kv(loaded, n, bench.seed), _prefix_ids(engine, n), 0)
        eager = run_ours(engine, conv, SlimDecodeConfig(gamma_decode=1.0, cuda_graphs=False), _question(bench),
                         bench.new_tokens)
        result["breakdown"] = {"context": n, "eager_ms_per_token": eager["ms_per_token"], **step_breakdown(loaded)}
        try:  # a diagnostic: its failure is recorded, not fatal to the timed results above
            result["kernels_per_token"] = {"context": n, **{
                name: kernels_per_token(engine, conv, _question(bench), fused)
                for name, fused in (("fused", True), ("unfused", False))}}
        except (RuntimeError, StopIteration) as e:
            result["kernels_per_token"] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
        del conv
        if on_progress is not None:
            on_progress(result)
    if bench.stream_context:
        result["stream"] = run_stream(engine, bench, 0.95)
    result.update(partial=False, seconds=round(time.perf_counter() - t_start, 1))
    return result


def acceptance(results: list[dict]) -> dict:
    """Issue 5's targets: ours <= 2x the floor at 32K and 64K; >= 10x faster than HF at 32K. Issue 19's
    (Qwen3-VL-8B shapes) are <= 2.5x the floor and >= 10x HF at 32K: x_floor says both."""
    by = {(r["context"], r["variant"]): r for r in results if "error" not in r}
    out = {}
    for n in (32768, 65536):
        if (n, "ours_dense") in by:
            out[f"ours_dense_x_floor_{n // 1024}k"] = by[(n, "ours_dense")]["x_floor"]
            out[f"ours_dense_le_2x_floor_{n // 1024}k"] = by[(n, "ours_dense")]["x_floor"] <= 2.0
    if (32768, "ours_dense") in by and (32768, "hf_generate") in by:
        speedup = by[(32768, "hf_generate")]["ms_per_token"] / by[(32768, "ours_dense")]["ms_per_token"]
        out["speedup_vs_hf_32k"] = round(speedup, 2)
        out["ge_10x_hf_32k"] = speedup >= 10
    return out
