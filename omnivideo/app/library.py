"""The bridge between the engine's conversations and the persistent KV store.

A video's prefix KV is stored under a `CacheKey` made of everything that shapes its bytes: the
file's content hash, the sampling settings, the model and its revision (weights by content),
quantization, dtype, the template's prefix tokens, the attention preset with its parameter values,
the prefill's chunking, the code version (derived from the code, omnivideo/app/code_version.py) and
the stack (library versions, device model, dense attention backend). The key is computed without
decoding the video (the content hash is remembered by path/size/mtime), so a warm question never
opens the video file.

    key = cache_key(store, path, loaded, chat, sampling, "balanced", engine.config)
    with store.lock(key):
        entry = store.get(key)
"""
import hashlib
import json
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import torch

from omnivideo.engine.conversation import Conversation
from omnivideo.app.code_version import code_version
from omnivideo.engine.attention import dense_backend
from omnivideo.engine.engine import Engine, EngineConfig
from omnivideo.engine.family import VideoLayout
from omnivideo.engine.fused.fp8_linear import resolve_prefill_linears
from omnivideo.engine.loading import LoadedModel
from omnivideo.engine.prefill.sparse_prefill import PRESETS
from omnivideo.engine.prompt import ChatFormat
from omnivideo.storage import CacheKey, KVStore

STACK_PACKAGES = ("torch", "transformers", "triton", "bitsandbytes")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def stack_record(device: torch.device, backend: str | None = None) -> dict:
    """What computes the bytes on this machine: library versions, the device model, the dense backend."""
    record = {"device": device_name(device)}
    for name in STACK_PACKAGES:
        try:
            record[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            record[name] = "-"
    if backend is not None:
        record["dense_backend"] = backend
    return record


def why_unusable(key: CacheKey) -> str | None:
    """Why an entry (e.g. imported from another machine) can never hit on this machine, or None.

    Compares what is known without loading a model: the code version, the library versions and the
    device (a CUDA entry needs this very GPU model; the dense backend is checked by the key itself)."""
    here = stack_record(torch.device("cpu"))
    stack = dict(key.stack)
    problems = [] if key.kernel_version == code_version() else [f"code {key.kernel_version} (here {code_version()})"]
    problems += [f"{name} {stack.get(name, '-')} (here {here[name]})" for name in STACK_PACKAGES
                 if stack.get(name, "-") != here[name]]
    devices = {"cpu"} | ({device_name(torch.device("cuda"))} if torch.cuda.is_available() else set())
    if stack.get("device", "-") not in devices:
        problems.append(f"device {stack.get('device', '-')} (here {', '.join(sorted(devices))})")
    return "made with " + ", ".join(problems) if problems else None


def engine_record(config: EngineConfig, attention: str, prefill_linears: str = "bf16") -> dict:
    """The prefill's shape, the preset's parameter values (its name alone would hide a changed gamma) and the
    precision of the prefill's linears that ran (bf16 / fp8: after the device's fallback, so an fp8 request on a
    GPU without FP8 shares the bf16 entry)."""
    record = {"chunk_size": config.chunk_size, "prefill_round_tokens": config.prefill_round_tokens,
              "vision_chunk_groups": config.vision_chunk_groups, "sparse_min_keys": config.sparse_min_keys,
              "prefill_linears": prefill_linears}
    params = PRESETS.get(attention)
    if params is not None:
        record.update({f"sparse.{k}": v for k, v in asdict(params).items()})
    return record


def cache_key(store: KVStore, path: Path, loaded: LoadedModel, chat: ChatFormat, sampling,
              attention: str, config: EngineConfig) -> CacheKey:
    family = loaded.family
    spec = family.processor
    # the template with a one-token, one-group video at 0 s: the family's way of writing a video in the prompt
    placeholder = VideoLayout((1, spec.merge_size, spec.merge_size), spec.merge_size, (0.0,))
    prefix_template = json.dumps(chat.video_prefix_ids(placeholder)).encode()
    text = loaded.text_config
    _, kv_heads, head_dim = family.kv_shape(text)
    backend = dense_backend(loaded.device, loaded.dtype, text.num_attention_heads, kv_heads, head_dim)
    linears, _ = resolve_prefill_linears(config.prefill_linears, loaded.device, loaded.dtype)
    return CacheKey(video_sha256=store.fingerprint(path), sampling=asdict(sampling),
                    model_id=loaded.model_id, model_revision=loaded.revision, quantization=loaded.quantization,
                    dtype=str(loaded.dtype).replace("torch.", ""),
                    prefix_tokens_sha256=hashlib.sha256(prefix_template).hexdigest(),
                    attention_preset=attention, kernel_version=code_version(),
                    engine={**engine_record(config, attention, linears), "family": family.name, **spec.record()},
                    stack=stack_record(loaded.device, backend))


def entry_meta(conv: Conversation, num_visual_tokens: int, info, timestamps_s: list[float],
               layout: VideoLayout | None = None) -> dict:
    """What a stored prefix needs besides its tensors to be resumed exactly (`layout`: the grid and the frame
    groups' times, which a Qwen3-VL prefix writes as text; kept at full precision)."""
    meta = {"rope_delta": conv.rope_delta, "prefix_len": conv.prefix_len, "num_visual_tokens": num_visual_tokens,
            "timestamps_s": [round(t, 4) for t in timestamps_s], "duration_s": info.duration_s,
            "video": {"width": info.width, "height": info.height, "fps": info.fps, "codec": info.codec}}
    if layout is not None:
        meta["layout"] = layout.to_dict()
    return meta


def restore(engine: Engine, chat: ChatFormat, entry, on_host: bool = False) -> Conversation:
    """Rebuild a conversation from a stored entry, layer by layer (checksums verified on the way), into
    the device cache or, `on_host`, straight into host memory (the GPU never holds the whole KV)."""
    meta = entry.meta
    if "layout" in meta:
        prefix_ids = chat.video_prefix_ids(VideoLayout.from_dict(meta["layout"]))
    else:   # written before layouts were stored: a Qwen2.5-VL prefix, known by its token count
        prefix_ids = chat.prefix_ids(meta["num_visual_tokens"])
    assert len(prefix_ids) == meta["prefix_len"], "stored prefix length disagrees with the template"
    device = torch.device("cpu") if on_host else engine.device
    return engine.conversation_from_prefix(entry.iter_layers(device), prefix_ids, meta["rope_delta"], on_host=on_host)
