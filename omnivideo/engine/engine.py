"""The engine loop: vision tower, chunked prefill of the video prefix, question prefill, decode.

It drives the Hugging Face modules directly (vision tower, embeddings, decoder stack, lm_head)
instead of `generate`, so that our attention plan, our cache and our positions reach every layer.
Batch 1. Positions: M-RoPE for the prefix (the model's own `get_rope_index`, through the family), then text
positions `index + rope_delta` for everything after it (Qwen2.5-VL and Qwen3-VL alike).

    engine = Engine(loaded, EngineConfig())
    conv = engine.ingest(prefix_ids, video_inputs)
    for token in engine.generate(conv, chat.first_turn_ids("What happens?"), SamplingParams()):
        ...
"""
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from omnivideo.engine.attention import AttentionPlan
from omnivideo.engine.conversation import Conversation
from omnivideo.engine.decode.slim_decode import SlimDecodeConfig, generate_slim
from omnivideo.engine.fused.fp8_linear import PREFILL_LINEARS, resolve_prefill_linears
from omnivideo.engine.kv_cache import OmniCache
from omnivideo.engine.loading import LoadedModel
from omnivideo.engine.prefill.ingest_pipeline import InputsSource, VisionSource, ingest_streamed
from omnivideo.engine.host_kv_cache import HostKVCache, is_host_cache
from omnivideo.engine.prefill.question_prefill import prefill_streamed
from omnivideo.engine.sampling import SamplingParams, sample_next_token
from omnivideo.engine.stack import decoder_stack, text_positions
from omnivideo.errors import ConfigError
from omnivideo.timeline import StageTimeline

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """chunk_size: prefix tokens per prefill forward (bounds activation memory on long videos);
    vision_chunk_groups: temporal frame groups per vision-tower forward (bounds its activation memory;
    exact, since the tower never mixes groups); sparse: OmniSparse parameters for the prefix prefill
    (None = dense); below sparse_min_keys keys a chunk runs dense (estimation would cost more than it saves);
    prefill_round_tokens: chunks are prefilled layer-major in rounds of up to this many tokens, so each NF4
    layer is dequantized once per round, not once per chunk (omnivideo/engine/prefill/prefix_prefill.py); chunk_size or less
    gives the chunk-by-chunk order; prefill_linears: "bf16", or "fp8" (the prefix prefill's linears on FP8 tensor
    cores where the GPU has them, omnivideo/engine/fused/fp8_linear.py; bf16 until the accuracy harness says
    otherwise)."""
    chunk_size: int = 4096
    prefill_round_tokens: int = 65536
    vision_chunk_groups: int = 16
    reserve_tokens: int = 1024   # cache room kept after the prefix for questions and answers
    sparse: object | None = None
    sparse_min_keys: int = 4096
    force_density: float | None = None  # benchmarks only
    prefill_linears: str = "bf16"

    def __post_init__(self):
        if self.chunk_size < 64 or self.chunk_size % 64:
            raise ConfigError(f"chunk_size must be a multiple of 64 (the sparse block size), got {self.chunk_size}")
        if self.prefill_round_tokens < 1:
            raise ConfigError(f"prefill_round_tokens must be >= 1, got {self.prefill_round_tokens}")
        if self.vision_chunk_groups < 1:
            raise ConfigError(f"vision_chunk_groups must be >= 1, got {self.vision_chunk_groups}")
        if self.reserve_tokens < 0:
            raise ConfigError(f"reserve_tokens must be >= 0, got {self.reserve_tokens}")
        if self.prefill_linears not in PREFILL_LINEARS:
            raise ConfigError(f"prefill_linears must be one of {', '.join(PREFILL_LINEARS)}, got {self.prefill_linears!r}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Engine:
    def __init__(self, loaded: LoadedModel, config: EngineConfig | None = None,
                 plan_factory: Callable[[str], AttentionPlan | None] | None = None,
                 slim_decode: SlimDecodeConfig | None = None):
        self.loaded = loaded
        self.config = config or EngineConfig()
        self.model = loaded.model
        self.device = loaded.device
        self.lm = self.model.model.language_model
        self.visual = self.model.model.visual
        self.embed = self.model.model.get_input_embeddings()
        self.lm_head = self.model.lm_head
        self.num_layers = self.loaded.text_config.num_hidden_layers
        self.video_pad_id = self.model.config.video_token_id
        # the prefix prefill's linears ("bf16" / "fp8") after the device's fallback, and why
        self.prefill_linears, self.prefill_linears_why = resolve_prefill_linears(
            self.config.prefill_linears, self.device, loaded.dtype)
        self.family = loaded.family   # prompt, positions, visual features, KV shape (omnivideo/engine/family/)
        # plan_factory(stage) -> plan for "prefix" / "text" forwards; None -> dense everywhere
        self.plan_factory = plan_factory or (lambda stage: None)
        # mechanism 3: decode each question over a per-head slimmed KV (None: dense decode, as before)
        self.slim_decode = slim_decode

    # -- vision -----------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_video(self, pixel_values_videos: torch.Tensor, video_grid_thw: torch.Tensor) -> torch.Tensor:
        """Vision tower + merger(s). pixel_values_videos [P, C*T*p*p] -> [P / merge^2, (1 + L) * hidden]: the
        embeddings, then the features of the family's L DeepStack layers (L = 0 for Qwen2.5-VL);
        video_grid_thw int [1, 3]."""
        pv = pixel_values_videos.to(self.device, dtype=self.visual.dtype)
        return self.family.encode_video(self.model, pv, video_grid_thw.to(self.device))

    # -- prefix ingest ----------------------------------------------------------------------------
    @torch.inference_mode()
    def ingest(self, prefix_ids: list[int], video_inputs, progress: Progress | None = None,
               cancel=None) -> Conversation:
        """Chunked vision and chunked prefill of the whole prefix into a fresh cache (`ingest_stream` over
        ready inputs: the same chunks, so the same bytes, as the pipelined path).

        Args:
            prefix_ids: template prefix with the video placeholder expanded (see ChatFormat.prefix_ids).
            video_inputs: object with pixel_values_videos, video_grid_thw, second_per_grid_ts.
        """
        return self.ingest_stream(prefix_ids, InputsSource(video_inputs), progress, cancel)

    @torch.inference_mode()
    def ingest_stream(self, prefix_ids: list[int], source: VisionSource, progress: Progress | None = None,
                      cancel=None, timeline: StageTimeline | None = None, kv_on_host: bool = False) -> Conversation:
        """The pipelined ingest (omnivideo/engine/prefill/ingest_pipeline.py): vision chunks of `config.vision_chunk_groups`
        frame groups consumed by the prefill chunks as the source delivers them; progress "vision" and
        "prefill"; raises VideoCancelled between chunks once `cancel` is set."""
        return ingest_streamed(self, prefix_ids, source, progress, cancel, timeline, kv_on_host)

    def conversation_from_prefix(self, layers, prefix_ids: list[int], rope_delta: int,
                                 on_host: bool = False) -> Conversation:
        """A conversation whose cache is a stored prefix: per-layer ([Hkv, N, D], [Hkv, N, D]), read straight
        into the device cache, or into host memory (`on_host`: questions then stream it per layer)."""
        reserve = len(prefix_ids) + self.config.reserve_tokens
        if on_host:
            cache = HostKVCache.from_layers(layers, self.num_layers, self.loaded.dtype, reserve=reserve)
        else:
            cache = OmniCache.from_layers(layers, self.num_layers, self.device, self.loaded.dtype, reserve=reserve)
        return Conversation(cache=cache, rope_delta=rope_delta, prefix_len=len(prefix_ids), ids=list(prefix_ids))

    # -- text + decode ----------------------------------------------------------------------------
    def forward_text(self, conv: Conversation, new_ids: list[int], stage: str,
                     plan: AttentionPlan | None = None) -> torch.Tensor:
        """Feed text tokens after the current end; return the last position's logits [V].

        stage: "text" (a question, a resumed turn) or "decode" (one generated token) picks the plan
        from `plan_factory` unless `plan` is given."""
        plan = plan if plan is not None else self.plan_factory(stage)
        if is_host_cache(conv.cache):  # KV in host memory: stream it layer by layer
            return prefill_streamed(self, conv, new_ids, plan)
        ids = torch.tensor([new_ids], device=self.device)
        pos = text_positions(conv.length, len(new_ids), conv.rope_delta, self.device)
        hidden = decoder_stack(self.lm, self.embed(ids), pos, lambda i: conv.cache, plan)
        conv.ids.extend(new_ids)
        return self.lm_head(hidden[:, -1])[0]

    @torch.inference_mode()
    def generate(self, conv: Conversation, new_ids: list[int], params: SamplingParams,
                 stop_ids: list[int]) -> Iterator[int]:
        """Prefill `new_ids` (after any pending answer tail), then stream up to max_new_tokens ids.

        The stop token is yielded (so the caller knows why it ended) but not fed back.
        """
        if self.slim_decode is not None:
            yield from generate_slim(self, conv, new_ids, params, stop_ids)
            return
        gen = params.generator(self.device)
        t0 = time.perf_counter()
        logits = self.forward_text(conv, conv.pending + list(new_ids), "text")
        conv.pending = []
        stops = set(stop_ids)
        first = True
        for step in range(params.max_new_tokens):
            token = int(sample_next_token(logits, params, gen))
            if first:
                conv.stats["ttft_s"] = time.perf_counter() - t0
                first = False
            yield token
            if token in stops:
                return
            if step == params.max_new_tokens - 1:
                conv.pending = [token]
                return
            logits = self.forward_text(conv, [token], "decode")

    @torch.inference_mode()
    def feed(self, conv: Conversation, ids: list[int]) -> None:
        """Prefill `ids` (e.g. a resumed session's past turns) without generating."""
        if ids:
            self.forward_text(conv, conv.pending + list(ids), "text")
            conv.pending = []

    def truncate(self, conv: Conversation, length: int) -> None:
        """Roll the conversation back to its first `length` tokens (e.g. the prefix alone)."""
        conv.cache.truncate(length)
        del conv.ids[length:]
        conv.pending = []
