"""A chat about one opened video: streamed answers, turns persisted as a session.

    chat = app.open_video("match.mp4")
    for piece in chat.ask("Who scores first?"):
        print(piece, end="")
    chat.last.as_dict()      # timings, tokens, cache_hit ...
"""
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from omnivideo.engine.detokenizer import Detokenizer
from omnivideo.engine.conversation import Conversation
from omnivideo.engine.prompt import ChatFormat
from omnivideo.engine.sampling import SamplingParams
from omnivideo.app.answer import AnswerResult
from omnivideo.progress import is_cancelled


@dataclass
class OpenedVideo:
    """A video after ingest (or after loading its stored prefix)."""
    path: Path
    duration_s: float
    timestamps_s: list[float]
    visual_tokens: int
    prefix_tokens: int
    timings: dict                      # video_s, vision_s, prefill_s, store_s, cache_load_s
    cache_hit: bool = False
    entry_id: str | None = None
    video_sha256: str | None = None
    extra: dict = field(default_factory=dict)


class VideoChat:
    """Multi-turn chat about one opened video; `session_id` is set once the first turn is stored."""

    def __init__(self, app, video: OpenedVideo, conv: Conversation, chat: ChatFormat,
                 session_id: str | None = None, turns: list[tuple[str, str]] | None = None, persist: bool = True):
        self.app, self.video, self.conv, self.chat = app, video, conv, chat
        self.persist = persist
        self.session_id = session_id
        self.turns: list[tuple[str, str]] = list(turns or [])
        self.last: AnswerResult | None = None

    def _persist(self, question: str, q_ids: list[int], answer: str, a_ids: list[int], result: AnswerResult) -> None:
        store = self.app.store
        if store is None or self.video.video_sha256 is None or not self.persist:
            return
        if self.session_id is None:
            self.session_id = store.create_session(self.video.video_sha256, self.app.config.model,
                                                   title=question[:60], video_path=str(self.video.path),
                                                   meta={"attention": self.app.config.attention,
                                                         "sampling": self.app.sampling_dict()})
        store.add_message(self.session_id, "user", question, {"ids": q_ids})
        store.add_message(self.session_id, "assistant", answer, {"ids": a_ids, "result": result.as_dict()})

    def _prefill_info(self) -> dict | None:
        """The prefix prefill's real sparsity (None when it ran dense or came from the store): `density`, the
        share of its causal attention blocks actually computed (every chunk call weighted by its size; dense
        ones count fully), the plain mean over chunk calls, dense fallbacks, estimates skipped after a
        fallback, chunk calls that ran sparse, and the lazy / flat-head shares of those."""
        s = self.video.extra.get("sparse")
        if not s:
            return None
        return {"density": s.get("work_density", s["mean_density"]), "mean_call_density": s["mean_density"],
                "dense_fallbacks": s["dense_fallbacks"], "skipped_estimates": s.get("skipped_estimates", 0),
                "lazy_share": s.get("lazy_share"), "flat_share": s.get("flat_share"), "calls": s["calls"],
                "sparse_calls": s.get("sparse_calls")}

    def _linears_info(self) -> dict:
        """Which linears made the prefix KV: "bf16" (the model's own compute dtype) or "fp8", after the device's
        fallback (a stored entry was made with the same: the cache key holds it). Questions and decode always
        run their bf16 / NF4 GEMV paths."""
        engine = self.app.engine
        return {"prefill": engine.prefill_linears, "requested": engine.config.prefill_linears,
                "why": engine.prefill_linears_why}

    def _decode_info(self) -> dict | None:
        """How this answer was decoded: gamma_decode, the share of visual KV it kept, CUDA graph or not."""
        slim = self.conv.stats.get("slim")
        if slim is None:
            return None
        return {"gamma_decode": self.app.config.gamma_decode, "kept_visual_share": slim.get("kept_visual_share"),
                "cuda_graph": slim.get("graph", False)}

    def ask(self, question: str, params: SamplingParams | None = None, stop=None) -> Iterator[str]:
        """Stream the answer to `question` as text pieces; `self.last` holds the result afterwards.

        `stop` (a CancelToken, a threading.Event or None) is checked after every token: once set, the
        answer ends there with stop_reason "stopped". Closing this generator early (the page went away)
        ends it the same way. Either way the turn is kept (and persisted) with what was generated, and
        the cache stays valid for the next question: the engine keeps the generated tokens it has not
        fed back in `conv.pending`, which the next question feeds first.
        """
        params = params or SamplingParams()
        t0 = time.perf_counter()
        first = not self.turns
        ids = self.chat.first_turn_ids(question) if first else self.chat.next_turn_ids(question)
        fed_ids = self.conv.pending + ids
        prompt_tokens = self.conv.length + len(fed_ids)
        reused = self.conv.length
        detok = Detokenizer(self.app.loaded.tokenizer)
        answer_ids, stop_reason, ttft = [], "length", None

        def record(reason: str) -> None:
            self._record(question, ids, answer_ids, detok.text, reason, t0, ttft, first, prompt_tokens, reused)

        try:
            # closing(): a stop leaves the engine's generator suspended at a yield; closing it there
            # now (not whenever it is collected) is what sets `conv.pending` before the turn is recorded.
            with closing(self.app.engine.generate(self.conv, ids, params, self.chat.stop_ids)) as tokens:
                for token in tokens:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    if token in self.chat.stop_ids:
                        stop_reason = "stop"
                        break
                    answer_ids.append(token)
                    piece = detok.push(token)
                    if piece:
                        yield piece
                    if is_cancelled(stop):
                        stop_reason = "stopped"
                        break
            tail = detok.flush()
            if tail:
                yield tail
        except GeneratorExit:  # the caller went away mid-answer: keep the turn as if stopped, then finish closing
            record("stopped")
            raise
        record(stop_reason)

    def _record(self, question: str, ids: list[int], answer_ids: list[int], answer: str, stop_reason: str,
                t0: float, ttft: float | None, first: bool, prompt_tokens: int, reused: int) -> None:
        """The turn is over: keep it in `turns`, build `self.last`, persist both messages."""
        total = time.perf_counter() - t0
        self.turns.append((question, answer))
        # the first answer's latency includes opening the video; later turns count only their own work
        lead = dict(self.video.timings) if first else {}
        timings = {k: lead.get(k, 0.0) for k in ("video_s", "vision_s", "prefill_s")}
        timings.update({k: v for k, v in lead.items() if k not in timings})
        before = sum(lead.values())
        timings.update(ttft_s=before + (ttft or total), total_s=before + total)
        self.last = AnswerResult(
            answer=answer, model=self.app.config.model, attention=self.app.config.attention,
            cache_hit=self.video.cache_hit, timings={k: round(v, 4) for k, v in timings.items()},
            tokens={"visual": self.video.visual_tokens, "prompt": prompt_tokens, "generated": len(answer_ids),
                    "reused": reused},
            frames={"count": len(self.video.timestamps_s), "timestamps_s": self.video.timestamps_s},
            stop_reason=stop_reason, extra={"turn": len(self.turns), "entry_id": self.video.entry_id,
                                            "sparse": self.video.extra.get("sparse"), "prefill": self._prefill_info(),
                                            "decode": self._decode_info(), "linears": self._linears_info(),
                                            "memory": self.app.memory_report(bool(self.video.extra.get("kv_on_host")))})
        self._persist(question, ids, answer, answer_ids, self.last)
        if self.session_id is not None:
            self.last.extra["session_id"] = self.session_id
