"""The bridge between the engine's conversations and the persistent KV store.

A video's prefix KV is stored under a `CacheKey` made of everything that shapes its bytes: the
file's content hash, the sampling settings, the model and its revision, quantization, dtype, the
template's prefix tokens, the attention preset and the kernel version. The key is computed without
decoding the video (the content hash is remembered by path/size/mtime), so a warm question never
opens the video file.

    key = cache_key(store, path, loaded, chat, sampling, "balanced")
    with store.lock(key):
        entry = store.get(key)
"""
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from omnivideo.engine.conversation import Conversation
from omnivideo.engine.engine import Engine
from omnivideo.engine.loading import LoadedModel
from omnivideo.engine.prompt import ChatFormat
from omnivideo.storage import CacheKey, KVStore

# Bump when the engine or a kernel changes the bytes a prefill writes for the same inputs.
KERNEL_VERSION = "omnivideo-3"  # 2: the vision tower runs our varlen attention; 3: fused vision blocks, FMA softmax


def cache_key(store: KVStore, path: Path, loaded: LoadedModel, chat: ChatFormat, sampling,
              attention: str) -> CacheKey:
    prefix_template = json.dumps(chat.prefix_ids(num_video_tokens=1)).encode()
    return CacheKey(video_sha256=store.fingerprint(path), sampling=asdict(sampling),
                    model_id=loaded.model_id, model_revision=loaded.revision, quantization=loaded.quantization,
                    dtype=str(loaded.dtype).replace("torch.", ""),
                    prefix_tokens_sha256=hashlib.sha256(prefix_template).hexdigest(),
                    attention_preset=attention, kernel_version=KERNEL_VERSION)


def entry_meta(conv: Conversation, num_visual_tokens: int, info, timestamps_s: list[float]) -> dict:
    """What a stored prefix needs besides its tensors to be resumed exactly."""
    return {"rope_delta": conv.rope_delta, "prefix_len": conv.prefix_len, "num_visual_tokens": num_visual_tokens,
            "timestamps_s": [round(t, 4) for t in timestamps_s], "duration_s": info.duration_s,
            "video": {"width": info.width, "height": info.height, "fps": info.fps, "codec": info.codec}}


def restore(engine: Engine, chat: ChatFormat, entry) -> Conversation:
    """Rebuild a conversation from a stored entry, layer by layer (checksums verified on the way)."""
    meta = entry.meta
    prefix_ids = chat.prefix_ids(meta["num_visual_tokens"])
    assert len(prefix_ids) == meta["prefix_len"], "stored prefix length disagrees with the template"
    return engine.conversation_from_prefix(entry.iter_layers(engine.device), prefix_ids, meta["rope_delta"])
