"""Pieces of the end-to-end prefill bench: attention clock, synthetic video, prefix prefill.

A clock around the text attention, synthetic video inputs of a given size, the prefix prefill
(vision embeddings in, chunked language model) and one layer's dense attention per backend.

    clock = AttentionClock.install(loaded)           # text attention now runs through the clock
    inputs = synthetic_video(loaded, 32768)          # 128 frame pairs of 448x448: 32768 visual tokens
    prefix = embed_prefix(engine, inputs, engine.encode_video(inputs.pixel_values_videos, inputs.video_grid_thw))
    cache = prefill(engine, prefix, plan)            # what Engine.ingest does after the vision tower

The attention time is measured with CUDA events recorded on the stream right before and after every
call of our attention function: the GPU time between each pair is exactly the attention's kernels
(estimate, plan, sparse or dense attention, the merge), including any idle gap its own host sync
causes, and nothing else; no host sync is added, so the measured run is the real one. The rest of the
prefill (projections, MLP, norms, RoPE, KV-cache writes) is total - attention.
"""
import time
from dataclasses import dataclass

import torch

from omnivideo.engine.attention import ATTN_NAME, omnivideo_attention
from omnivideo.engine.kv_cache import OmniCache
from omnivideo.engine.prefill.prefix_prefill import plan_rounds, prefill_round
from omnivideo.bench.random_model import set_text_attention

TIMED_ATTN = "omnivideo_timed"
TEXT_ID = 100          # a plain text token around the video (its value does not matter for speed)
TEXT_EDGE = 16         # text tokens before and after the video, like the chat template's


class AttentionClock:
    """Wraps `omnivideo_attention`; sums its GPU time (CUDA events) or wall time (CPU)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self.cpu_s = 0.0
        self.calls = 0

    @classmethod
    def install(cls, loaded) -> "AttentionClock":
        """Register a clock as the text attention of `loaded.model` (undo with `uninstall`)."""
        from transformers import AttentionInterface

        clock = cls(loaded.device)
        AttentionInterface.register(TIMED_ATTN, clock)
        set_text_attention(loaded.model, TIMED_ATTN)
        return clock

    @staticmethod
    def uninstall(loaded) -> None:
        set_text_attention(loaded.model, ATTN_NAME)

    def __call__(self, module, *args, **kwargs):
        self.calls += 1
        if self.device.type != "cuda":
            start = time.perf_counter()
            out = omnivideo_attention(module, *args, **kwargs)
            self.cpu_s += time.perf_counter() - start
            return out
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        out = omnivideo_attention(module, *args, **kwargs)
        end.record()
        self.events.append((begin, end))
        return out

    def reset(self) -> None:
        self.events, self.cpu_s, self.calls = [], 0.0, 0

    def total_s(self) -> float:
        if self.device.type != "cuda":
            return self.cpu_s
        torch.cuda.synchronize(self.device)
        return sum(b.elapsed_time(e) for b, e in self.events) / 1e3


@dataclass
class SyntheticVideo:
    """Model inputs of a video of `frames` frame pairs (random pixels: speed does not depend on them)."""
    pixel_values_videos: torch.Tensor   # [frames * side^2, 3 * 2 * patch^2]
    video_grid_thw: torch.Tensor        # [[frames, side, side]]
    second_per_grid_ts: torch.Tensor    # [1.0]: 2 fps sampling, as the app's default
    num_visual_tokens: int


def synthetic_video(loaded, visual_tokens: int, side: int = 32, seed: int = 0) -> SyntheticVideo:
    """`visual_tokens` tokens from frames of side x side patches (32: 448 px, 256 tokens per frame pair)."""
    vc = loaded.vision_config
    per_frame = (side // vc.spatial_merge_size) ** 2
    assert visual_tokens % per_frame == 0, f"{visual_tokens} tokens is not a whole number of {per_frame}-token frames"
    frames = visual_tokens // per_frame
    gen = torch.Generator(device=loaded.device).manual_seed(seed)
    dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2
    dtype = loaded.model.model.visual.dtype
    pv = torch.randn(frames * side * side, dim, generator=gen, device=loaded.device, dtype=dtype)
    return SyntheticVideo(pv, torch.tensor([[frames, side, side]]), torch.tensor([1.0]), visual_tokens)


@torch.inference_mode()
def encode_video(engine, video: SyntheticVideo) -> torch.Tensor:
    """The vision tower as the engine's ingest runs it: `EngineConfig.vision_chunk_groups` frame groups
    per call (the whole video at once on an engine without that setting). Returns [tokens, hidden]."""
    t, h, w = video.video_grid_thw[0].tolist()
    step = getattr(engine.config, "vision_chunk_groups", None) or t
    rows = h * w
    return torch.cat([engine.encode_video(video.pixel_values_videos[g * rows:min(t, g + step) * rows],
                                          torch.tensor([[min(step, t - g), h, w]]))
                      for g in range(0, t, step)])


@dataclass
class Prefix:
    """What the chunked prefill consumes: embeds [1, N, hidden], positions [3, 1, N], text_mask [N]."""
    embeds: torch.Tensor
    positions: torch.Tensor
    text_mask: torch.Tensor


def prefix_ids(engine, visual_tokens: int) -> list[int]:
    return [TEXT_ID] * TEXT_EDGE + [engine.video_pad_id] * visual_tokens + [TEXT_ID] * TEXT_EDGE


@torch.inference_mode()
def embed_prefix(engine, video: SyntheticVideo, video_embeds: torch.Tensor) -> Prefix:
    """Positions (M-RoPE) and embeddings of the prefix, as `Engine.ingest` builds them."""
    ids = torch.tensor([prefix_ids(engine, video.num_visual_tokens)], device=engine.device)
    is_video = ids == engine.video_pad_id
    positions, _ = engine.model.model.get_rope_index(
        ids, mm_token_type_ids=is_video.int() * 2, video_grid_thw=video.video_grid_thw.to(engine.device),
        second_per_grid_ts=video.second_per_grid_ts.to(engine.device))
    embeds = engine.embed(ids)
    embeds[is_video] = video_embeds.to(embeds.dtype)
    return Prefix(embeds, positions, ~is_video[0])


@torch.inference_mode()
def prefill(engine, prefix: Prefix, plan, chunk_size: int, round_tokens: int | None = None) -> OmniCache:
    """The engine's prefill of the prefix into a fresh cache (Engine.ingest after vision): chunks of
    `chunk_size` in layer-major rounds of `round_tokens` (default: the engine's config)."""
    n = prefix.embeds.shape[1]
    cache = OmniCache(engine.num_layers)
    cache.reserve(n)
    rounds = round_tokens if round_tokens is not None else engine.config.prefill_round_tokens
    for chunks in plan_rounds(n, chunk_size, rounds):
        prefill_round(engine, [prefix.embeds[:, a:b] for a, b in chunks],
                      [prefix.positions[:, :, a:b] for a, b in chunks], cache, plan)
    return cache


def prefill_flops(loaded, n: int) -> dict:
    """Matmul FLOPs of the decoder layers' linears and of causal attention over n tokens."""
    tc = loaded.text_config
    d = tc.hidden_size // tc.num_attention_heads
    kv = tc.num_key_value_heads * d
    per_layer = 2 * tc.hidden_size * (2 * tc.hidden_size + 2 * kv + 3 * tc.intermediate_size)
    return {"linear": per_layer * tc.num_hidden_layers * n,
            "attention": 4.0 * d * tc.num_attention_heads * n * (n + 1) / 2 * tc.num_hidden_layers}


def _median_ms(fn, device: torch.device, runs: int = 3) -> float:
    """Median of `runs` timings after one untimed call (cuDNN plans, Triton compiles); CUDA events on
    a GPU, wall time on CPU."""
    fn()
    times = []
    for _ in range(runs):
        if device.type != "cuda":
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
            continue
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(begin.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def dense_layer_times(n: int, chunk: int, backends: tuple[str, ...], hq: int = 28, hkv: int = 4,
                      d: int = 128, device: torch.device = torch.device("cuda"),
                      dtype: torch.dtype = torch.bfloat16) -> dict:
    """One layer's dense attention over an n-token prefill in `chunk`-token chunks, per backend (ms,
    CUDA only), in the model's layouts; plus one causal SDPA call over all n tokens (the floor the
    chunked path aims at) and our Triton kernel over every causal block of each chunk."""
    from omnivideo.engine.attention import dense_causal_attention, set_offset_backend
    from omnivideo.kernels.sparse_prefill.block_sparse_attention import block_sparse_attention
    from omnivideo.kernels.sparse_prefill.estimate import estimate
    from omnivideo.kernels.sparse_prefill.sparse_plan import SparseParams, build_block_lists

    gen = torch.Generator(device=device).manual_seed(n)
    q = torch.randn(1, n, hq, d, device=device, dtype=dtype, generator=gen).transpose(1, 2)
    k, v = (torch.randn(1, hkv, n + 1024, d, device=device, dtype=dtype, generator=gen)[:, :, :n] for _ in "kv")
    scale = d ** -0.5
    starts = range(0, n, chunk)
    out = {"length": n, "chunk": chunk, "one_call_causal_sdpa_ms": _median_ms(
        lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale,
                                                                 enable_gqa=True), device)}
    for name in backends:
        def layer():
            for s in starts:
                dense_causal_attention(q[:, :, s:s + chunk], k[:, :, :s + chunk], v[:, :, :s + chunk], scale)
        set_offset_backend(None if name == "auto" else name)
        try:
            out[name] = _median_ms(layer, device)
        except (RuntimeError, ValueError, TypeError, NotImplementedError) as e:
            out[name] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:160]}"
        finally:
            set_offset_backend(None)
    params = SparseParams()
    qs = [q[0, :, s:s + chunk] for s in starts]
    lists = [build_block_lists(estimate(qc, k[0, :, :s + chunk], q_offset=s, params=params, scale=scale),
                               q_offset=s, Nk=s + chunk, params=params, force_density=1.0)
             for s, qc in zip(starts, qs)]
    out["triton_all_blocks"] = _median_ms(lambda: [
        block_sparse_attention(qc, k[0, :, :s + chunk], v[0, :, :s + chunk], lc, q_offset=s, scale=scale)
        for s, qc, lc in zip(starts, qs, lists)], device)
    return out


def nf4_dequant_s(loaded) -> float | None:
    """Seconds of one dequantization of every NF4 weight of the decoder layers (None without NF4).
    bitsandbytes does this inside every prefill forward (many rows: dequantize, then a bf16 matmul),
    so a chunked prefill pays it once per chunk: the part of the linear time chunking adds."""
    try:
        import bitsandbytes as bnb
    except ImportError:
        return None
    mods = [m for m in loaded.model.model.language_model.layers.modules() if isinstance(m, bnb.nn.Linear4bit)]
    if not mods:
        return None

    def once():
        for m in mods:
            bnb.functional.dequantize_4bit(m.weight.data, m.weight.quant_state)
    return _median_ms(once, loaded.device) / 1e3
