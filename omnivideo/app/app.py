"""The application: owns the model, the engine and the persistent store; opens videos into chats.

    app = App(AppConfig(model="tiny"))
    chat = app.open_video("match.mp4")          # from the store, or decode + vision + prefill (+ store)
    for piece in chat.ask("What happens?"):     # streamed text
        print(piece, end="")
    print(chat.last.as_dict())
"""
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.loading import LoadedModel, LoadOptions, load_model
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams  # noqa: F401  (re-exported: omnivideo/ui/ talks to omnivideo.app only)
from omnivideo.app.answer import SYSTEM_PROMPT, format_mmss  # noqa: F401  (format_mmss re-exported for omnivideo/ui/)
from omnivideo.app.config import AppConfig
from omnivideo.app.gpu_budget import enforce_budget, kv_on_host, memory_report
from omnivideo.errors import CacheEntryCorrupt, CacheError, SessionError, VideoError
from omnivideo.app.library import cache_key, entry_meta, restore
from omnivideo.app.models import family_for_model
from omnivideo.app.video import SamplingConfig
from omnivideo.app.video.sampling import pixel_defaults
from omnivideo.engine.family import VideoLayout
from omnivideo.app.video_chat import OpenedVideo, VideoChat
from omnivideo.storage import KVStore

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]


def _check_path(path: Path) -> Path:
    """Cheap checks before hashing: the store's fingerprint must never be asked about a directory."""
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if path.is_dir():
        raise VideoError(f"{path} is a directory, not a video file")
    return path


def _reported(layers, progress: Progress | None, total: int):
    """The store's layer iterator, reporting progress(i, total, "store") as each layer is written."""
    for i, layer in enumerate(layers, 1):
        yield layer
        if progress is not None:
            progress(i, total, "store")


class App:
    """Lazily loads the model once; opens videos into `VideoChat`s backed by the persistent store."""

    def __init__(self, config: AppConfig, *, use_store: bool = True):
        self.config = config
        self._loaded: LoadedModel | None = None
        self._engine: Engine | None = None
        self._store: KVStore | None = None
        self._use_store = use_store
        self.load_s = 0.0

    _MODEL_FIELDS = ("data_dir", "model", "device", "dtype", "quant")

    def reconfigured(self, config: AppConfig) -> "App":
        """An app with `config` that keeps this one's loaded model when the model settings are the same
        (changing fps or the attention preset must not reload gigabytes of weights). Close this one after."""
        new = App(config, use_store=self._use_store)
        if self._loaded is not None and all(getattr(config, f) == getattr(self.config, f) for f in self._MODEL_FIELDS):
            new._loaded, new.load_s = self._loaded, 0.0
        return new

    # -- lazily built parts ---------------------------------------------------------------------------
    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            t0 = time.perf_counter()
            c = self.config
            self._loaded = load_model(LoadOptions(model=c.model, models_dir=c.models_dir, device=c.device,
                                                  dtype=c.dtype, quant=c.quant))
            self.load_s = time.perf_counter() - t0
            enforce_budget(self._loaded, c)
        return self._loaded

    def kv_on_host(self, prefix_tokens: int) -> bool:
        """Whether a prefix of this many tokens keeps its KV in host memory (omnivideo/app/gpu_budget.py)."""
        return kv_on_host(self.loaded, self.config, prefix_tokens)

    def memory_report(self, on_host: bool) -> dict:
        return memory_report(self.loaded, self.config, on_host)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from omnivideo.engine.decode.slim_decode import SlimDecodeConfig
            from omnivideo.engine.prefill.sparse_prefill import PRESETS

            c = self.config
            # answers stream through the static-buffer decode loop (a CUDA graph per question on a GPU);
            # gamma_decode 1 keeps every KV row: the same tokens as the model's own forward
            self._engine = Engine(self.loaded, EngineConfig(chunk_size=c.chunk_size, sparse=PRESETS[c.attention],
                                                             sparse_min_keys=c.sparse_min_keys,
                                                             prefill_linears=c.prefill_linears),
                                  slim_decode=SlimDecodeConfig(gamma_decode=c.gamma_decode))
        return self._engine

    @property
    def store(self) -> KVStore | None:
        if self._store is None and self._use_store:
            self._store = KVStore(self.config.cache_dir, budget_bytes=self.config.cache_budget_bytes)
        return self._store

    def chat_format(self) -> ChatFormat:
        return ChatFormat(self.loaded.tokenizer, system=SYSTEM_PROMPT, family=self.loaded.family)

    @property
    def family(self):
        """The model family (omnivideo/engine/family/): the loaded model's, else named from the model alone."""
        return self._loaded.family if self._loaded is not None else family_for_model(self.config.model)

    def sampling_config(self) -> SamplingConfig:
        """The sampling settings under the family's rules (resize factor and its default pixel limits)."""
        c = self.config
        factor = self.family.processor.factor
        kwargs = {"factor": factor, **pixel_defaults(factor)}
        if c.fps is not None:
            kwargs["fps"] = c.fps
        if c.max_frames is not None:
            kwargs["max_frames"] = c.max_frames
        if c.total_pixels is not None:
            kwargs["total_pixels"] = c.total_pixels
        return SamplingConfig(**kwargs)

    def sampling_dict(self) -> dict:
        return asdict(self.sampling_config())

    # -- videos ---------------------------------------------------------------------------------------
    def plan(self, path: str | Path, with_times: bool = False) -> dict:
        """The planner's report for `path` at the current settings (no model is loaded); `with_times`
        also finds the real PTS of the frames sampling will take (decoding, as `probe` does)."""
        from omnivideo.app.video import probe_report

        return probe_report(_check_path(Path(path)), self.sampling_config(), model=self.config.model,
                            attention=self.config.attention, with_times=with_times,
                            gamma_decode=self.config.gamma_decode)

    def open_video(self, path: str | Path, progress: Progress | None = None, cancel=None,
                   require_store: bool = False, *, stored_as: dict | None = None, sessions: bool = True) -> VideoChat:
        """A chat on `path`: its stored prefix if there is one, else decode + vision + prefill (+ store).

        If storing fails (disk full, entry over the budget) the chat still works: the reason is
        logged and kept in `video.extra["store_error"]`, unless `require_store` (then it is raised).
        `stored_as` (a `library()` item): open that entry, with the sampling and preset it was made
        with, instead of the current settings' (see `open_entry`). `sessions` False: the chat's turns are
        not kept as a session (the accuracy harness asks thousands of one-off questions).
        """
        path = _check_path(Path(path))
        chat = self.chat_format()
        if self.store is None:
            video, conv = self._compute(path, chat, progress, cancel)
            return VideoChat(self, video, conv, chat, persist=sessions)
        sampling, attention = self.sampling_config(), self.config.attention
        if stored_as is not None:
            sampling, attention = SamplingConfig(**stored_as["sampling"]), stored_as["attention_preset"]
        key = cache_key(self.store, path, self.loaded, chat, sampling, attention, self.engine.config)
        # Held across lookup and ingest: a second process opening the same video waits, then hits.
        with self.store.lock(key):
            found = self._load(key, path, chat, progress)
            if found is not None:
                video, conv = found
            elif stored_as is not None and (sampling, attention) != (self.sampling_config(), self.config.attention):
                # Computing it again would need the entry's settings in the engine: say what to do instead.
                raise CacheError(f"the cache entry of {path.name} no longer matches the file (changed or "
                                 "removed since); re-ingest it with the current settings")
            else:
                video, conv = self._compute(path, chat, progress, cancel)
                t0 = time.perf_counter()
                try:
                    layers = _reported(conv.cache.iter_layers(conv.prefix_len), progress, self.engine.num_layers)
                    entry = self.store.put(key, layers,
                                           entry_meta(conv, video.visual_tokens, video.extra["info"],
                                                      video.timestamps_s, video.extra["layout"]), video_path=path)
                except CacheError as e:
                    if require_store:
                        raise
                    log.warning("the video's KV was not stored: %s", e)
                    video.extra["store_error"] = str(e)
                else:
                    video.entry_id = entry.id
                    entry.close()
                video.timings["store_s"] = time.perf_counter() - t0
        video.video_sha256 = key.video_sha256
        return VideoChat(self, video, conv, chat, persist=sessions)

    def ingest(self, path: str | Path, progress: Progress | None = None, cancel=None) -> OpenedVideo:
        """Make sure `path` is in the store (the library's "add"); returns what was ingested or found."""
        return self.open_video(path, progress=progress, cancel=cancel, require_store=True).video

    def _load(self, key, path: Path, chat: ChatFormat, progress: Progress | None):
        entry = self.store.get(key)
        if entry is None:
            return None
        t0 = time.perf_counter()
        on_host = self.kv_on_host(entry.meta["prefix_len"])
        try:
            with entry:
                conv = restore(self.engine, chat, entry, on_host=on_host)
        except CacheEntryCorrupt as e:
            log.warning("%s: dropping the entry and recomputing", e)
            self.store.drop(entry.id)
            return None
        meta = entry.meta
        if progress is not None:
            progress(1, 1, "load")
        video = OpenedVideo(path=path,
                            duration_s=meta["duration_s"], timestamps_s=meta["timestamps_s"],
                            visual_tokens=meta["num_visual_tokens"], prefix_tokens=meta["prefix_len"],
                            timings={"video_s": 0.0, "vision_s": 0.0, "prefill_s": 0.0,
                                     "cache_load_s": time.perf_counter() - t0},
                            cache_hit=True, entry_id=entry.id, extra={"kv_on_host": on_host})
        return video, conv

    def _compute(self, path: Path, chat: ChatFormat, progress: Progress | None, cancel):
        """Pipelined cold ingest: readers decode time segments while the engine encodes and prefills earlier
        ones (omnivideo/app/video/stream.py, omnivideo/engine/prefill/ingest_pipeline.py); the same bytes as decoding first."""
        from omnivideo.timeline import StageTimeline
        from omnivideo.app.video.stream import StreamConfig, open_video_stream

        t0 = time.perf_counter()
        engine = self.engine
        timeline = StageTimeline(engine.device)
        spec = self.loaded.family.processor
        with open_video_stream(path, self.sampling_config(), vision=self.loaded.vision_config, device=engine.device,
                               config=StreamConfig(),   # small reader segments pipeline best (StreamConfig)
                               progress=progress, cancel=cancel, timeline=timeline,
                               normalization=(spec.image_mean, spec.image_std)) as stream:
            # the planned times (index / fps, as the model's processor writes them), known before any decoding
            layout = VideoLayout.from_frames(stream.grid_thw, spec.merge_size, stream.plan.timestamps_s,
                                             spec.temporal_patch_size)
            prefix_ids = chat.video_prefix_ids(layout)
            on_host = self.kv_on_host(len(prefix_ids) + engine.config.reserve_tokens)
            conv = engine.ingest_stream(prefix_ids, stream, progress=progress, cancel=cancel, timeline=timeline,
                                        kv_on_host=on_host)
        decode_end = max((s["end_s"] for s in timeline.finish() if s["stage"] == "decode"), default=0.0)
        video = OpenedVideo(path=path, duration_s=stream.info.duration_s,
                            timestamps_s=[round(t, 3) for t in stream.timestamps_s],
                            visual_tokens=stream.num_visual_tokens, prefix_tokens=len(prefix_ids),
                            timings={"video_s": decode_end, "vision_s": conv.stats["vision_s"],
                                     "prefill_s": conv.stats["prefill_s"], "ingest_s": time.perf_counter() - t0},
                            extra={"info": stream.info, "sparse": conv.stats.get("sparse"), "kv_on_host": on_host,
                                   "layout": layout})
        return video, conv

    # -- library and sessions -------------------------------------------------------------------------
    def library(self) -> list[dict]:
        """Stored videos, most recently used first: entry_id, video_path, model_id, attention_preset,
        sampling, duration_s, num_visual_tokens, num_frames, num_tokens (cached), nbytes, last_used_at..."""
        out = []
        for row in self.store.ls():
            item = dict(row)
            item["entry_id"] = item.pop("id")
            meta = item.pop("meta", None) or {}
            item["duration_s"] = meta.get("duration_s")
            item["num_visual_tokens"] = meta.get("num_visual_tokens")
            item["num_frames"] = len(meta.get("timestamps_s") or [])
            out.append(item)
        return out

    def open_entry(self, entry_id: str, progress: Progress | None = None) -> VideoChat:
        """Open a library entry as it was stored (its own sampling and attention preset): a cache hit.

        Raises CacheError when the entry is gone, was made with another model than the loaded one, or
        no longer matches its file."""
        full_id = self.store.resolve(entry_id)
        item = next((it for it in self.library() if it["entry_id"] == full_id), None)
        if item is None:
            raise CacheError(f"cache entry {entry_id[:8]} is gone")
        loaded = self.loaded
        if (item["model_id"], item["quantization"]) != (loaded.model_id, loaded.quantization):
            raise CacheError(f"cache entry {entry_id[:8]} was made with model {item['model_id']} "
                             f"({item['quantization']}); the app runs {loaded.model_id} ({loaded.quantization}): "
                             "switch the model in the settings to open it")
        if not item.get("video_path"):
            raise CacheError(f"cache entry {entry_id[:8]} does not record its video's path")
        return self.open_video(item["video_path"], progress=progress, stored_as=item)

    def remove(self, entry_id: str) -> bool:
        return self.store.drop(self.store.resolve(entry_id))

    def sessions(self) -> list[dict]:
        return self.store.list_sessions()

    def resume(self, session_id: str, progress: Progress | None = None) -> VideoChat:
        """Reopen a stored session: its video (from the store) and every turn so far, token for token."""
        session = self.store.get_session(session_id)
        if session["model_id"] != self.config.model:
            raise SessionError(f"session {session_id[:8]} was held with model {session['model_id']}, "
                               f"not {self.config.model}")
        path = session.get("video_path")
        if not path or not Path(path).exists():
            raise SessionError(f"the video of session {session_id[:8]} is no longer at {path}")
        chat = self.open_video(path, progress=progress)
        history = [i for m in session["messages"] for i in (m.get("meta") or {}).get("ids", [])]
        if history:
            self.engine.feed(chat.conv, history)
        chat.session_id = session_id
        msgs = session["messages"]
        chat.turns = [(msgs[i]["content"], msgs[i + 1]["content"]) for i in range(0, len(msgs) - 1, 2)]
        return chat

    def close(self) -> None:
        """Close the store and drop this app's references to the model (freed unless another app
        from `reconfigured` shares it)."""
        self._loaded = self._engine = None
        if self._store is not None:
            self._store.close()
            self._store = None
