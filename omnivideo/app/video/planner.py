"""What a run will cost before any model work: visual tokens, KV bytes, estimated GPU memory.

The estimate is a sum of named terms, each from figures in `omnivideo.app.models` (no weights are
read): NF4 decoder weights + bf16 embeddings and vision tower, the full prefix KV (bf16, every
layer: ingest keeps it complete at every attention preset, see docs/method.md), activations of one
prefill chunk and one vision chunk, and a fixed CUDA runtime reserve. The decode figure is the visual
KV share that `--gamma-decode` was measured to keep (docs/benchmarks/slimming). When the total exceeds the
detected GPU, the warning names the largest `--max-frames` (and the matching `--fps`) that fits.

    report = probe_report("lecture.mp4", SamplingConfig(fps=2.0), model="Qwen/Qwen2.5-VL-7B-Instruct")
    report["visual_tokens"], report["kv_bytes"], report["fits"], report["warning"]
"""
import dataclasses
import math
import os
from dataclasses import dataclass

from omnivideo.app.config import ATTENTION_PRESETS
from omnivideo.errors import ConfigError
from omnivideo.app.models import ModelFootprint, footprint_for
from omnivideo.app.video.info import VideoInfo, probe_video
from omnivideo.app.video.reader import VideoReader
from omnivideo.app.video.sampling import SamplingConfig, SamplingPlan, plan_sampling

GIB = 1 << 30
NF4_BYTES_PER_PARAM = 0.5 + 4 / 64  # 4-bit codes + one fp32 absmax per block of 64 (no double quant)
BF16 = 2
TEXT_TOKENS = 1024  # system prompt, template, question and answer around the visual tokens
PREFILL_CHUNK_TOKENS = 4096  # AppConfig.chunk_size default
ACTIVATION_BYTES_PER_HIDDEN = 48  # per token and hidden unit, one decoder layer live at a time:
# bf16 residual, norm, q/k/v/o (~8 x hidden) and the gated MLP (3 x ~5.3 x hidden)
VISION_HIDDEN, VISION_ACT_BYTES_PER_PATCH = 1280, 40_000  # Qwen2.5-VL ViT: ~16 bf16 [1280]-vectors/patch
VISION_CHUNK_STEPS = 4  # temporal grid steps encoded per vision chunk
RUNTIME_RESERVE = 768 << 20  # CUDA context, cuBLAS workspaces, allocator slack
USABLE_FRACTION = 0.95  # of the GPU's total memory; the rest is fragmentation headroom
# Decode keeps a per-head share of the visual KV on the GPU (mechanism 3), set by --gamma-decode (the
# --attention presets act on the prefill only and never lower memory: ingest stores the full KV).
# Measured kept visual shares (docs/benchmarks/slimming: the trained synth model's captured attention,
# and the structured workload), the larger of the two at each gamma_decode, so the plan does not promise
# memory the measurement did not show; linear in between, and the 0.8 figure below it.
MEASURED_DECODE_SHARE = ((0.8, 0.450), (0.9, 0.607), (0.95, 0.747), (0.98, 0.879), (0.99, 0.933), (1.0, 1.0))


def decode_kv_share(gamma_decode: float) -> float:
    """Share of the visual KV that decoding at `gamma_decode` keeps on the GPU (measured, interpolated)."""
    if not 0.0 < gamma_decode <= 1.0:
        raise ConfigError(f"gamma_decode must be in (0, 1], got {gamma_decode}")
    points = MEASURED_DECODE_SHARE
    if gamma_decode <= points[0][0]:
        return points[0][1]
    for (g0, s0), (g1, s1) in zip(points, points[1:]):
        if gamma_decode <= g1:
            return s0 + (s1 - s0) * (gamma_decode - g0) / (g1 - g0)
    return 1.0


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Byte figures of one run; None where the model's size is unknown (a local checkpoint)."""
    visual_tokens: int
    kv_bytes_per_token: int | None
    kv_bytes: int | None
    weights_bytes: int | None
    activation_bytes: int | None
    runtime_bytes: int
    gpu_estimate_bytes: int | None
    decode_kv_bytes: int | None
    gpu_memory_bytes: int | None
    fits: bool | None
    warning: str | None = None
    kv_placement: str | None = None     # "gpu", "host" (streamed per layer) or "none" (not even that fits)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def detect_gpu_memory() -> int | None:
    """Total memory of CUDA device 0 in bytes, or None without a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(0).total_memory)


def weights_bytes(fp: ModelFootprint) -> int:
    """NF4 decoder body, bf16 embeddings / lm_head and vision tower (what the GPU loader does)."""
    return int(fp.params_body * NF4_BYTES_PER_PARAM + (fp.params_embed + fp.params_vision) * BF16)


def activation_bytes(fp: ModelFootprint, plan: SamplingPlan) -> int:
    """One prefill chunk through one decoder layer, or one vision chunk, whichever is larger."""
    chunk = min(PREFILL_CHUNK_TOKENS, plan.visual_tokens + TEXT_TOKENS)
    text = chunk * fp.hidden_size * ACTIVATION_BYTES_PER_HIDDEN
    t, h, w = plan.grid_thw
    vision = min(t, VISION_CHUNK_STEPS) * h * w * VISION_ACT_BYTES_PER_PATCH
    return max(text, vision)


def plan_memory(plan: SamplingPlan, model: str, attention: str = "dense",
                gpu_memory_bytes: int | None = None, gamma_decode: float = 1.0) -> MemoryPlan:
    """Memory figures for `plan` on `model`; `gpu_memory_bytes` None = no GPU. The `attention` preset changes
    none of them (it skips prefill work, the stored KV stays complete); `gamma_decode` sets decode_kv_bytes."""
    if attention not in ATTENTION_PRESETS:
        raise ConfigError(f"attention must be one of {', '.join(ATTENTION_PRESETS)}, got {attention!r}")
    fp = footprint_for(model)
    if fp is None:
        return MemoryPlan(plan.visual_tokens, None, None, None, None, RUNTIME_RESERVE, None, None,
                          gpu_memory_bytes, None, f"model {model!r} has no known size: memory not estimated")
    per_token = fp.kv_bytes_per_token
    kv = (plan.visual_tokens + TEXT_TOKENS) * per_token
    weights, act = weights_bytes(fp), activation_bytes(fp, plan)
    total = weights + kv + act + RUNTIME_RESERVE
    decode_kv = int(plan.visual_tokens * per_token * decode_kv_share(gamma_decode)) + TEXT_TOKENS * per_token
    fits = None if gpu_memory_bytes is None else total <= gpu_memory_bytes * USABLE_FRACTION
    placement = None
    if gpu_memory_bytes is not None:
        streamed = weights + act + RUNTIME_RESERVE + 2 * kv // fp.num_layers   # two layers staged
        placement = "gpu" if fits else "host" if streamed <= gpu_memory_bytes * USABLE_FRACTION else "none"
    return MemoryPlan(plan.visual_tokens, per_token, kv, weights, act, RUNTIME_RESERVE, total, decode_kv,
                      gpu_memory_bytes, fits, kv_placement=placement)


def kv_fits_gpu(kv_bytes: int, resident_bytes: int, chunk_tokens: int, hidden_size: int, budget_bytes: int) -> bool:
    """The app's decision once a model is loaded: weights already resident, this prefix's KV, one prefill
    chunk's activations and the runtime reserve within the budget (else the KV stays in host memory)."""
    act = chunk_tokens * hidden_size * ACTIVATION_BYTES_PER_HIDDEN
    return resident_bytes + kv_bytes + act + RUNTIME_RESERVE <= budget_bytes * USABLE_FRACTION


def _with_frames(cfg: SamplingConfig, frames: int) -> SamplingConfig:
    if cfg.nframes is not None:
        return dataclasses.replace(cfg, nframes=frames)
    return dataclasses.replace(cfg, max_frames=frames, min_frames=min(cfg.min_frames, frames))


def suggest_frames(info: VideoInfo, cfg: SamplingConfig, model: str, attention: str,
                   gpu_memory_bytes: int) -> SamplingPlan | None:
    """The plan with the most frames (even counts, down from the current one) that fits the GPU."""
    frames = plan_sampling(info, cfg).count
    for m in range(frames - 2, 1, -2):  # pure arithmetic: a few hundred plans at most
        plan = plan_sampling(info, _with_frames(cfg, m))
        if plan_memory(plan, model, attention, gpu_memory_bytes).fits:
            return plan
    return None


def fit_warning(info: VideoInfo, cfg: SamplingConfig, model: str, attention: str, memory: MemoryPlan) -> str:
    need, have = memory.gpu_estimate_bytes / GIB, memory.gpu_memory_bytes / GIB
    head = f"estimated {need:.1f} GiB of GPU memory but the GPU has {have:.1f} GiB"
    better = suggest_frames(info, cfg, model, attention, memory.gpu_memory_bytes)
    if better is None:
        return f"{head}: even 2 frames do not fit; try a smaller model (--model)"
    start = cfg.start_s or 0.0
    end = info.duration_s if cfg.end_s is None else min(cfg.end_s, info.duration_s)
    fps = math.floor(better.count / (end - start) * 100) / 100
    hint = (f"--max-frames {better.count} (or --fps {fps:g}) for {better.visual_tokens} visual tokens")
    if memory.kv_placement == "host":
        return (f"{head}: the KV stays in host memory, streamed to the GPU a layer at a time (slower "
                f"questions); {hint} keeps it on the GPU")
    return f"{head}: try {hint}"


def probe_report(path: str | os.PathLike, cfg: SamplingConfig | None = None, model: str = "tiny",
                 attention: str = "dense", gpu_memory_bytes: int | None | str = "detect",
                 with_times: bool = True, gamma_decode: float = 1.0) -> dict:
    # "kv_placement" says which path a run takes: the KV on the GPU, or in host memory streamed per layer
    # (when the whole KV does not fit the budget, `--gpu-memory` or the detected GPU)
    """The `probe --json` object: metadata, sampling plan and memory figures.

    The sampled times are the real PTS of the frames sampling will take (the frame nearest each planned
    time, found by decoding without colour conversion): on a variable-frame-rate file the plan's
    index / average-fps times can be a frame away from any real frame. `with_times` False (the browser
    app's estimate, which shows no times) skips that decoding and reports no times at all."""
    cfg = cfg or SamplingConfig()
    info = probe_video(path)
    plan = plan_sampling(info, cfg)
    stamps = None
    if with_times:
        with VideoReader(path) as reader:
            stamps = [round(pts, 4) for pts, _ in reader.frames_at(plan.timestamps_s, pixels=False)]
    gpu = detect_gpu_memory() if gpu_memory_bytes == "detect" else gpu_memory_bytes
    memory = plan_memory(plan, model, attention, gpu, gamma_decode)
    if memory.fits is False:
        memory = dataclasses.replace(memory, warning=fit_warning(info, cfg, model, attention, memory))
    figures = memory.to_dict()
    figures.pop("visual_tokens")
    return {
        **info.to_dict(),
        "sampled": {"count": plan.count, **({"timestamps_s": stamps} if with_times else {}),
                    "resized_height": plan.resized_height, "resized_width": plan.resized_width},
        "visual_tokens": plan.visual_tokens,
        "model": model,
        "attention": attention,
        "gamma_decode": gamma_decode,
        **figures,
    }
