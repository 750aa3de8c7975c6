"""The trained model: a small real `Qwen2_5_VLForConditionalGeneration`, built from a size config.

Same class, same config schema and same checkpoint layout as the hub models, so every engine path
(loading, vision tower, prefill, cache, decode) runs it unchanged. The default size (`ModelSize()`):
LLM hidden 256 x 6 layers, 4 query / 2 KV heads of 64 (M-RoPE sections [8, 12, 12]); vision tower
hidden 128 x 4 blocks (windowed attention, blocks 1 and 3 full), patch 14, temporal patch 2, 2x2
merge: ~7.3M parameters, ~15 MB in bf16.

    tok = build_synth_tokenizer()
    model = build_model(ModelSize(), tok, seed=0)
    export_checkpoint(model, tok, out_dir)      # bf16 safetensors, loadable by from_pretrained
"""
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from omnivideo.engine.tiny_model import SPECIAL_TOKENS
from omnivideo.errors import ConfigError

MAX_SHARD = 15 * 2**20   # bytes (huggingface_hub parses "15MB" as 10**6 units, and no "MiB")
MARKER = "omnivideo_synth.json"   # what a checkpoint dir holds besides the HF files: its training record


@dataclass(frozen=True, slots=True)
class ModelSize:
    hidden: int = 256
    layers: int = 6
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 1024
    mrope_section: tuple[int, int, int] = (8, 12, 12)
    rope_theta: float = 10000.0
    vision_hidden: int = 128
    vision_depth: int = 4
    vision_heads: int = 2
    vision_intermediate: int = 512
    fullatt_blocks: tuple[int, ...] = (1, 3)
    max_positions: int = 131072
    tie_embeddings: bool = False

    def __post_init__(self):
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise ConfigError(f"hidden {self.hidden} / heads {self.heads} / kv heads {self.kv_heads} do not divide")
        if 2 * sum(self.mrope_section) != self.hidden // self.heads:
            raise ConfigError(f"mrope_section {self.mrope_section} must sum to head_dim/2 = {self.hidden // self.heads // 2}")
        if self.vision_hidden % self.vision_heads or (self.vision_hidden // self.vision_heads) % 4:
            raise ConfigError(f"vision head dim {self.vision_hidden}/{self.vision_heads} must be a multiple of 4")
        if not all(0 <= i < self.vision_depth for i in self.fullatt_blocks):
            raise ConfigError(f"fullatt_blocks {self.fullatt_blocks} out of range for depth {self.vision_depth}")


# Named sizes: "default" is the brief's ~7M model; "small" (1.5M: LLM 128 x 4, 2 q / 1 kv heads; tower 64 x 4)
# is the one that learned on CPU in docs/training.md (the default had not left its plateau after 4.4K steps).
SIZES = {
    "default": ModelSize(),
    "small": ModelSize(hidden=128, layers=4, heads=2, kv_heads=1, intermediate=512, vision_hidden=64,
                       vision_heads=1, vision_intermediate=256),
}


def model_config(size: ModelSize, tokenizer):
    """The Qwen2_5_VLConfig of `size` (token ids from `tokenizer`, which holds the Qwen special tokens)."""
    from transformers import Qwen2_5_VLConfig

    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = dict(vocab_size=len(tokenizer), hidden_size=size.hidden, intermediate_size=size.intermediate,
                num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
                max_position_embeddings=size.max_positions, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": size.rope_theta,
                                 "mrope_section": list(size.mrope_section)},
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=size.tie_embeddings)
    vision = dict(depth=size.vision_depth, hidden_size=size.vision_hidden, intermediate_size=size.vision_intermediate,
                  num_heads=size.vision_heads, out_hidden_size=size.hidden, patch_size=14, temporal_patch_size=2,
                  spatial_merge_size=2, window_size=112, fullatt_block_indexes=list(size.fullatt_blocks),
                  tokens_per_second=2)
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                            video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                            vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=size.tie_embeddings)


def build_model(size: ModelSize, tokenizer, seed: int = 0):
    """A freshly initialised model (fp32, SDPA attention), deterministic in `seed`; global RNG untouched."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = model_config(size, tokenizer)
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    return model


def count_parameters(model) -> dict:
    vision = sum(p.numel() for p in model.model.visual.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "vision": vision, "language": total - vision}


def export_checkpoint(model, tokenizer, dest: str | os.PathLike, record: dict | None = None) -> Path:
    """Write a bf16 HF checkpoint dir (config, safetensors shards <= 15 MiB, tokenizer, generation
    config, `omnivideo_synth.json` with `record`) atomically: a temp dir, then rename over `dest`."""
    from transformers import GenerationConfig

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        export = type(model)(model.config)   # a copy, so the training model keeps its fp32 weights
        export.load_state_dict(model.state_dict())
        export = export.to(torch.bfloat16)
        export.generation_config = GenerationConfig(eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                                                    pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
        export.save_pretrained(tmp, max_shard_size=MAX_SHARD)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(record or {}, indent=2, default=str))
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def size_to_dict(size: ModelSize) -> dict:
    return asdict(size)
