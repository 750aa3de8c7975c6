"""Pipelined ingest of a video prefix: vision in chunks of frame groups, fed to the chunked LLM prefill.

The vision tower never mixes temporal frame groups (its windowed and full-attention blocks attend
within one group of `temporal_patch_size` frames), so encoding k groups at a time gives exactly the
embeddings of one pass over the whole video. M-RoPE positions for the whole prefix need only the
grid and the seconds per grid step, known before any pixel. So each LLM prefill round (chunks of
`EngineConfig.chunk_size` tokens grouped into rounds of up to `EngineConfig.prefill_round_tokens`, run
layer-major: omnivideo/engine/prefill/prefix_prefill.py) runs as soon as the vision chunks covering its video tokens are
done, while the caller's source is still decoding later frames on the CPU.

    source = InputsSource(video_inputs)              # or a decoding source (omnivideo.app.video.stream)
    conv = ingest_streamed(engine, prefix_ids, source, progress, cancel, timeline=StageTimeline(device))
    timeline.finish()   # [{"stage": "vision", "index": 0, "start_s": ..., "end_s": ..., "lane": "gpu"}, ...]

Memory on the device: one vision chunk's activations, the embeddings of one prefill round (its hidden
states) plus at most one vision chunk not yet consumed, one LLM chunk's activations, one layer's
dequantized weights while a round of several chunks runs, and the KV cache.
"""
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from omnivideo.engine.attention import AttentionPlan
from omnivideo.engine.conversation import Conversation
from omnivideo.engine.host_kv_cache import HostKVCache
from omnivideo.engine.kv_cache import OmniCache
from omnivideo.engine.prefill.host_rounds import HostRoundCache
from omnivideo.engine.prefill.prefix_prefill import plan_rounds, prefill_round
from omnivideo.engine.prefill.sparse_prefill import SparsePrefill
from omnivideo.errors import VideoCancelled
from omnivideo.timeline import StageTimeline

Progress = Callable[[int, int, str], None]


class VisionSource(Protocol):
    """Pixels of one video, delivered in order. `grid_thw` = (grid_t, grid_h, grid_w) of the whole video in
    patches; `second_per_grid_t()` may block until it is known (the first and last frames' timestamps; only
    Qwen2.5-VL's positions ask for it);
    iterating yields pixel values [k * grid_h * grid_w, C * tps * p * p] of the next k frame groups (any k)."""
    grid_thw: tuple[int, int, int]

    def second_per_grid_t(self) -> float: ...

    def __iter__(self) -> Iterator[torch.Tensor]: ...


class InputsSource:
    """A VisionSource over ready `VideoInputs` (pixel_values_videos, video_grid_thw, second_per_grid_ts)."""

    def __init__(self, video_inputs):
        self.inputs = video_inputs
        self.grid_thw = tuple(int(x) for x in video_inputs.video_grid_thw.reshape(-1)[:3])

    def second_per_grid_t(self) -> float:
        return float(self.inputs.second_per_grid_ts.reshape(-1)[0])

    def __iter__(self):
        yield self.inputs.pixel_values_videos


class _VisionChunks:
    """Encodes the source's frame groups `chunk_groups` at a time, on demand, keeping only unconsumed tokens."""

    def __init__(self, engine, source: VisionSource, chunk_groups: int, progress: Progress | None, cancel,
                 timeline: StageTimeline):
        self.engine, self.chunk_groups = engine, chunk_groups
        self.grid_t, self.grid_h, self.grid_w = source.grid_thw
        self.rows_per_group = self.grid_h * self.grid_w
        self.tokens_per_group = self.rows_per_group // engine.visual.spatial_merge_size ** 2
        self._source = source
        self._pixels = iter(source)
        self._pending: list[torch.Tensor] = []  # pixel rows received but not encoded
        self._pending_rows = 0
        self._ready: list[tuple[int, torch.Tensor]] = []  # (first token index, embeddings [n, hidden])
        self.groups_done = 0
        self.progress, self.cancel, self.timeline = progress, cancel, timeline

    @property
    def tokens_done(self) -> int:
        return self.groups_done * self.tokens_per_group

    def _next_pixels(self, groups: int) -> torch.Tensor:
        rows = groups * self.rows_per_group
        while self._pending_rows < rows:
            chunk = next(self._pixels, None)
            if chunk is None:
                raise AssertionError(f"the source ended after {self.groups_done} of {self.grid_t} frame groups")
            assert chunk.shape[0] % self.rows_per_group == 0, (chunk.shape, self.rows_per_group)
            self._pending.append(chunk)
            self._pending_rows += chunk.shape[0]
        joined = self._pending[0] if len(self._pending) == 1 else torch.cat(self._pending)
        rest = joined[rows:]
        self._pending, self._pending_rows = ([rest] if rest.shape[0] else []), rest.shape[0]
        return joined[:rows]

    def ensure(self, tokens: int) -> None:
        """Run vision chunks until the first `tokens` video tokens are encoded."""
        while self.tokens_done < tokens:
            if self.cancel is not None and getattr(self.cancel, "cancelled", False):
                raise VideoCancelled("ingest cancelled")
            k = min(self.chunk_groups, self.grid_t - self.groups_done)
            pixels = self._next_pixels(k)
            grid = torch.tensor([[k, self.grid_h, self.grid_w]])
            with self.timeline.device_span("vision", self.groups_done // self.chunk_groups):
                out = self.engine.encode_video(pixels, grid)
            self._ready.append((self.tokens_done, out))
            self.groups_done += k
            if self.progress is not None:
                self.progress(self.groups_done, self.grid_t, "vision")

    def available(self, tokens: int) -> bool:
        """Whether `ensure(tokens)` would run without waiting for the source: its vision chunks need only
        groups already encoded, received, or decoded and waiting (a source without `groups_ready`, such as
        ready inputs, has everything)."""
        ready = getattr(self._source, "groups_ready", None)
        if ready is None:
            return True
        groups = -(-tokens // self.tokens_per_group)
        if groups > self.groups_done:   # ensure() encodes whole vision chunks
            groups = min(self.grid_t, self.groups_done + -(-(groups - self.groups_done) // self.chunk_groups)
                         * self.chunk_groups)
        return groups <= self.groups_done + self._pending_rows // self.rows_per_group + ready()

    def take(self, start: int, stop: int) -> torch.Tensor:
        """Vision rows of video tokens [start, stop) (already encoded; [n, (1 + DeepStack layers) * hidden], see
        ModelFamily.encode_video); frees everything before `stop`."""
        parts = [e[max(0, start - s):stop - s] for s, e in self._ready if s < stop and s + e.shape[0] > start]
        self._ready = [(s, e) for s, e in self._ready if s + e.shape[0] > stop]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def _video_counts(prefix_ids: list[int], video_pad_id: int) -> list[int]:
    """counts[i] = video tokens among prefix_ids[:i] (length N + 1)."""
    counts = [0]
    for t in prefix_ids:
        counts.append(counts[-1] + (t == video_pad_id))
    return counts


def _fresh_cache(engine, tokens: int, on_host: bool):
    if not on_host:
        cache = OmniCache(engine.num_layers)
        cache.reserve(tokens)
        return cache
    _, kv_heads, head_dim = engine.family.kv_shape(engine.loaded.text_config)
    return HostKVCache(engine.num_layers, kv_heads, head_dim, engine.loaded.dtype, capacity=tokens)


def ingest_streamed(engine, prefix_ids: list[int], source: VisionSource, progress: Progress | None = None,
                    cancel=None, timeline: StageTimeline | None = None, kv_on_host: bool = False):
    """Prefill `prefix_ids` (video placeholder expanded) into a fresh cache, encoding the source's frame groups
    in chunks of `engine.config.vision_chunk_groups` just before the prefill round that needs them.
    Returns a Conversation with stats vision_s / prefill_s (device busy time), ingest_s (wall)
    and sparse. `timeline` (default: a private one) receives the vision chunks' and prefill rounds' spans.
    `kv_on_host`: the KV goes to a HostKVCache, one layer staged on the device per round (host_rounds.py)."""
    device, cfg = engine.device, engine.config
    t_start = time.perf_counter()
    timeline = timeline if timeline is not None else StageTimeline(device)
    grid_t, grid_h, grid_w = source.grid_thw
    vision = _VisionChunks(engine, source, cfg.vision_chunk_groups, progress, cancel, timeline)
    counts = _video_counts(prefix_ids, engine.video_pad_id)
    if counts[-1] != grid_t * vision.tokens_per_group:
        raise AssertionError(f"{counts[-1]} video tokens in the prompt, {grid_t * vision.tokens_per_group} from the grid")
    ids = torch.tensor([prefix_ids], device=device)
    is_video = ids == engine.video_pad_id
    family = engine.family
    positions, rope_delta = family.rope_index(engine.model, ids, is_video, (grid_t, grid_h, grid_w),
                                              source.second_per_grid_t)
    cache = _fresh_cache(engine, len(prefix_ids) + cfg.reserve_tokens, kv_on_host)
    plan = engine.plan_factory("prefix")
    if plan is None and cfg.sparse is not None:
        text_mask = family.sparse_text_mask(ids, is_video, engine.model.config)
        plan = AttentionPlan(sparse=SparsePrefill(cfg.sparse, text_mask=text_mask, min_keys=cfg.sparse_min_keys,
                                                  force_density=cfg.force_density,
                                                  frame_tokens=vision.tokens_per_group))
    width = engine.loaded.text_config.hidden_size   # vision rows: [embedding | DeepStack features...] of this width
    n = len(prefix_ids)
    pending = [c for r in plan_rounds(n, cfg.chunk_size, cfg.chunk_size) for c in r]
    index = 0
    while pending:
        # a round: the next chunk, plus the following ones while their frames are ready (all of them for
        # decoded inputs; with a decoding source, what it has decoded so far, so that the prefill of early
        # chunks still overlaps the decoding of later frames), up to prefill_round_tokens
        take = 1
        while take < len(pending) and pending[take][1] - pending[0][0] <= cfg.prefill_round_tokens \
                and vision.available(counts[pending[take][1]]):
            take += 1
        chunks, pending = pending[:take], pending[take:]
        if cancel is not None and getattr(cancel, "cancelled", False):
            raise VideoCancelled("ingest cancelled")
        start, stop = chunks[0][0], chunks[-1][1]
        vision.ensure(counts[stop])
        hidden, deepstack = [], []
        for a, b in chunks:
            embeds = engine.embed(ids[:, a:b])
            extra = None
            if counts[b] > counts[a]:
                rows, mask = vision.take(counts[a], counts[b]), is_video[:, a:b]
                embeds[mask] = rows[:, :width].to(embeds.dtype)
                if rows.shape[1] > width:   # DeepStack: added after the first decoder layers (prefix_prefill.py)
                    extra = (mask, rows[:, width:])
            hidden.append(embeds)
            deepstack.append(extra)

        def after_layer(layer: int, start=start, stop=stop) -> None:
            if cancel is not None and getattr(cancel, "cancelled", False):
                raise VideoCancelled("ingest cancelled")
            if progress is not None:
                progress(start + (stop - start) * (layer + 1) // engine.num_layers, n, "prefill")

        with timeline.device_span("prefill", index):
            target = HostRoundCache(cache, stop - start, device) if kv_on_host else cache
            prefill_round(engine, hidden, [positions[:, :, a:b] for a, b in chunks], target, plan, after_layer,
                          deepstack=deepstack)
            if kv_on_host:
                target.finish()
        del hidden, deepstack
        index += 1
    timeline.finish()  # synchronises the device: ingest_s is the wall time of the finished work
    stats = {"vision_s": timeline.busy_s("vision"), "prefill_s": timeline.busy_s("prefill"),
             "ingest_s": time.perf_counter() - t_start}
    if plan is not None and isinstance(plan.sparse, SparsePrefill):
        stats["sparse"] = plan.sparse.stats.summary()
    return Conversation(cache=cache, rope_delta=rope_delta, prefix_len=n, ids=list(prefix_ids),
                        stats=stats)
