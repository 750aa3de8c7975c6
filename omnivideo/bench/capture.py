"""`bench capture`: real Q/K/V of a video prefix from any checkpoint, for the prefill benchmark.

    omnivideo bench capture clip.mp4 --model tiny --out /tmp/qk.safetensors
    omnivideo bench capture talk.mp4 --model Qwen/Qwen2.5-VL-7B-Instruct --layers 0 14 27 \
        --kv-heads 2 --max-tokens 32768 --out qk.safetensors
    omnivideo bench prefill --qk qk.safetensors        # fidelity + speed on it
    omnivideo bench capture talk.mp4 --model Qwen/Qwen2.5-VL-7B-Instruct --layers 0 14 27 \
        --question "What happens after the goal?" --answer-tokens 256 --out turn.safetensors
    omnivideo bench slimming --qk turn.safetensors             # decode slimming on it

The video goes through the app's sampling and the engine's own prefill (`Engine.ingest`, chunked,
dense attention); an `AttentionPlan.observe` hook copies each selected layer's post-RoPE queries and
the chunk's new keys and values to host memory as the chunks pass, so GPU memory does not grow. The
file holds, per layer L, `layer{L}.q` [Hq', N, d], `layer{L}.k` / `layer{L}.v` [Hkv', N, d] (the
first `kv_heads` KV heads and their query groups; the first N = min(prefix, max_tokens) tokens, all
of the prefix from position 0, so causal attention over it is the model's own), `text_mask` [N] uint8
(1 at text tokens, which the sparse path keeps dense) and `video_grid_thw`; metadata: model,
revision, layers, heads, scale, sampling.

With a question, the turn is captured too (what the decode-slimming benchmark needs): the question is
prefilled after the prefix and `answer_tokens` greedy tokens are decoded (no stop token), and per layer
`layer{L}.q_turn` [Hq', Tq + A, d] holds the question's then each decoded token's queries,
`layer{L}.k_turn` / `v_turn` [Hkv', Tq + A, d] their keys and values; meta `question_tokens` (Tq) and
`answer_tokens` (A). The prefix is then kept whole (`max_tokens` must be unset): the question attends
to all of it.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from omnivideo.errors import ConfigError

FORMAT = "omnivideo-qk/1"


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """layers: decoder layers to keep (None: first, middle, last); kv_heads: keep the first n KV heads
    and their query groups (None: all); max_tokens: keep the first n prefix tokens (None: all)."""
    layers: tuple[int, ...] | None = None
    kv_heads: int | None = None
    max_tokens: int | None = None
    question: str | None = None
    answer_tokens: int = 0

    def __post_init__(self):
        if self.layers is not None and (not self.layers or min(self.layers) < 0):
            raise ConfigError(f"layers must be non-negative layer indices, got {self.layers}")
        if self.kv_heads is not None and self.kv_heads < 1:
            raise ConfigError(f"kv_heads must be >= 1, got {self.kv_heads}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.answer_tokens < 0 or (self.answer_tokens and not self.question):
            raise ConfigError(f"answer_tokens ({self.answer_tokens}) needs a question and must be >= 0")
        if self.question is not None and (not self.question.strip() or self.max_tokens is not None):
            raise ConfigError("a captured question needs a non-empty text and the whole prefix (no max_tokens)")


class QKRecorder:
    """`AttentionPlan.observe` callable: per selected layer, the chunks' q and new k/v, on the host."""

    def __init__(self, layers: tuple[int, ...], kv_heads: int | None, max_tokens: int | None):
        self.layers = set(layers)
        self.kv_heads, self.max_tokens = kv_heads, max_tokens
        self.parts: dict[int, dict[str, list[torch.Tensor]]] = {i: {"q": [], "k": [], "v": []} for i in layers}
        self.scale: float | None = None

    def __call__(self, module, q, k, v, scale):
        """q [1, Hq, Tq, d]; k, v [1, Hkv, Tk, d]: the chunk's queries are the last Tq of the Tk keys."""
        layer = getattr(module, "layer_idx", -1)
        if layer not in self.layers:
            return
        start = k.shape[2] - q.shape[2]
        n = q.shape[2] if self.max_tokens is None else min(q.shape[2], self.max_tokens - start)
        if n <= 0:
            return
        hkv = min(self.kv_heads or k.shape[1], k.shape[1])
        hq = hkv * (q.shape[1] // k.shape[1])
        self.scale = scale
        parts = self.parts[layer]
        parts["q"].append(q[0, :hq, :n].to("cpu", copy=True))
        parts["k"].append(k[0, :hkv, start:start + n].to("cpu", copy=True))
        parts["v"].append(v[0, :hkv, start:start + n].to("cpu", copy=True))

    def tensors(self, suffix: str = "") -> dict[str, torch.Tensor]:
        out = {}
        for layer, parts in sorted(self.parts.items()):
            for name, chunks in parts.items():
                out[f"layer{layer}.{name}{suffix}"] = torch.cat(chunks, dim=1).contiguous()
        return out


def default_layers(num_layers: int) -> tuple[int, ...]:
    return tuple(sorted({0, num_layers // 2, num_layers - 1}))


def capture(video: Path, out: Path, *, model: str = "tiny", data_dir: Path | None = None,
            config: CaptureConfig = CaptureConfig(), fps: float = 2.0, max_frames: int | None = None,
            device: str = "auto", dtype: str = "auto", quant: str = "auto", loaded=None) -> dict:
    """Run `video` through the engine's prefix prefill with a recorder; write `out`; return its metadata.
    `loaded` (a LoadedModel) skips loading `model`."""
    from safetensors.torch import save_file

    from omnivideo.engine.attention import AttentionPlan
    from omnivideo.engine.engine import Engine, EngineConfig
    from omnivideo.engine.loading import LoadOptions, load_model
    from omnivideo.engine.prompt import ChatFormat
    from omnivideo.app.config import default_data_dir
    from omnivideo.app.video import SamplingConfig, sample_video, to_model_inputs

    if loaded is None:
        models_dir = (data_dir or default_data_dir()) / "models"
        loaded = load_model(LoadOptions(model=model, models_dir=models_dir, device=device, dtype=dtype, quant=quant))
    num_layers = loaded.text_config.num_hidden_layers
    layers = config.layers if config.layers is not None else default_layers(num_layers)
    if max(layers) >= num_layers:
        raise ConfigError(f"the model has {num_layers} layers; cannot capture layer {max(layers)}")
    vis = loaded.vision_config
    sampling = SamplingConfig(fps=fps) if max_frames is None else SamplingConfig(fps=fps, max_frames=max_frames)
    inputs = to_model_inputs(sample_video(video, sampling), patch_size=vis.patch_size,
                             temporal_patch_size=vis.temporal_patch_size, merge_size=vis.spatial_merge_size)
    prefix = ChatFormat(loaded.tokenizer).prefix_ids(inputs.num_visual_tokens)
    recorder = QKRecorder(layers, config.kv_heads, config.max_tokens)
    engine = Engine(loaded, EngineConfig(), plan_factory=lambda stage: AttentionPlan(observe=recorder)
                    if stage == "prefix" else None)
    conv = engine.ingest(prefix, inputs)
    tensors = recorder.tensors()
    turn = {}
    if config.question:
        turn = _capture_turn(engine, conv, layers, config)
        tensors.update(turn.pop("tensors"))
    n = tensors[f"layer{layers[0]}.k"].shape[1]
    tensors["text_mask"] = (torch.tensor(prefix[:n]) != loaded.model.config.video_token_id).to(torch.uint8)
    tensors["video_grid_thw"] = inputs.video_grid_thw.to(torch.int64).reshape(1, 3)
    q, k = tensors[f"layer{layers[0]}.q"], tensors[f"layer{layers[0]}.k"]
    meta = {"format": FORMAT, "model": loaded.model_id, "revision": loaded.revision, "layers": list(layers),
            "query_heads": q.shape[0], "kv_heads": k.shape[0], "head_dim": k.shape[2], "tokens": n,
            "prefix_tokens": len(prefix), "visual_tokens": inputs.num_visual_tokens, "scale": recorder.scale,
            "video": Path(video).name, "fps": fps, "second_per_grid_ts": float(inputs.second_per_grid_ts[0]),
            "dtype": str(k.dtype).replace("torch.", ""), "quantization": loaded.quantization, **turn}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out), metadata={k: json.dumps(v) for k, v in meta.items()})
    return meta


def _capture_turn(engine, conv, layers: tuple[int, ...], config: CaptureConfig) -> dict:
    """Prefill the question after the prefix and decode `answer_tokens` greedy tokens, recording every
    pass's queries and new keys/values in the selected layers (the engine's own text/decode path)."""
    from omnivideo.engine.attention import AttentionPlan
    from omnivideo.engine.prompt import ChatFormat
    from omnivideo.engine.sampling import SamplingParams

    turn_ids = ChatFormat(engine.loaded.tokenizer).first_turn_ids(config.question)
    recorder = QKRecorder(layers, config.kv_heads, None)
    engine.plan_factory = lambda stage: AttentionPlan(observe=recorder) if stage in ("text", "decode") else None
    # A decoded tokens need A decode passes: the last of A + 1 sampled tokens is never fed
    for _ in engine.generate(conv, turn_ids, SamplingParams(max_new_tokens=config.answer_tokens + 1), []):
        pass
    return {"tensors": recorder.tensors("_turn"), "question": config.question, "question_tokens": len(turn_ids),
            "answer_tokens": config.answer_tokens}


@dataclass
class CapturedQK:
    """A capture file: per layer (q [Hq, N, d], k [Hkv, N, d], v [Hkv, N, d]), text_mask [N] bool, meta;
    turns: per layer (q, k, v) of the captured question + answer ([.., Tq + A, d]), or None."""
    layers: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    text_mask: torch.Tensor
    meta: dict
    turns: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None


def load_qk(path: Path) -> CapturedQK:
    """Read a file written by `capture` (ConfigError if it is not one)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no Q/K capture file at {path}")
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
        if json.loads(raw.get("format", "null")) != FORMAT:
            raise ConfigError(f"{path} is not a `bench capture` file (format {raw.get('format')!r})")
        meta = {k: json.loads(v) for k, v in raw.items()}
        layers = {i: tuple(f.get_tensor(f"layer{i}.{n}") for n in "qkv") for i in meta["layers"]}
        text_mask = f.get_tensor("text_mask").bool()
        turns = None
        if "question_tokens" in meta:
            turns = {i: tuple(f.get_tensor(f"layer{i}.{n}_turn") for n in "qkv") for i in meta["layers"]}
    return CapturedQK(layers, text_mask, meta, turns)
