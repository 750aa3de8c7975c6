"""Known models: aliases, defaults and the size figures the planner needs without loading weights.

A model is named by a hub id (`Qwen/Qwen2.5-VL-7B-Instruct`, `Qwen/Qwen3-VL-8B-Instruct`), a local
checkpoint directory, or an alias: `tiny` (a random 2-layer Qwen2.5-VL built offline under the data dir:
answers are noise), `tiny-qwen3-vl` (the same for Qwen3-VL, with DeepStack) or `synth` (a small Qwen2.5-VL
trained on synthetic videos, shipped in omnivideo/checkpoints/synth/). `family_for_model` names the model
family without loading weights (the sampling rules differ per family: omnivideo/engine/family/).
"""
import json
from dataclasses import dataclass
from pathlib import Path

from omnivideo import SHIPPED_CHECKPOINTS
from omnivideo.engine.family import DEFAULT_FAMILY, ModelFamily, family_named, family_of
from omnivideo.errors import ModelError

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
TINY_ALIAS = "tiny"
TINY_QWEN3_VL_ALIAS = "tiny-qwen3-vl"
SHIPPED_ALIASES = ("synth",)   # checkpoints inside the package (omnivideo/checkpoints/<alias>/)


@dataclass(frozen=True, slots=True)
class ModelFootprint:
    """Shapes that size weights and KV: enough for the planner, no weights needed.

    `params_body` counts decoder linear weights (quantized to NF4 on a GPU); `params_embed` counts
    the input embedding and lm_head (kept 16-bit by bitsandbytes); `params_vision` the vision tower.
    """
    num_layers: int
    num_q_heads: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    params_body: float
    params_embed: float
    params_vision: float

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V, every layer, bf16."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * 2


# Qwen3-VL dense (config.json of the Instruct checkpoints): 2B 28 layers 16/8 heads hidden 2048; 4B 36 layers
# 32/8 heads hidden 2560 (head dim 128, not hidden/heads); 8B 36 layers 32/8 heads hidden 4096: 144 KiB/token.


FOOTPRINTS: dict[str, ModelFootprint] = {
    "Qwen/Qwen2.5-VL-3B-Instruct": ModelFootprint(36, 16, 2, 128, 2048, 2.77e9, 0.31e9, 0.67e9),
    "Qwen/Qwen2.5-VL-7B-Instruct": ModelFootprint(28, 28, 4, 128, 3584, 6.53e9, 1.09e9, 0.67e9),
    "Qwen/Qwen2.5-VL-32B-Instruct": ModelFootprint(64, 40, 8, 128, 5120, 31.2e9, 1.56e9, 0.67e9),
    "Qwen/Qwen2.5-VL-72B-Instruct": ModelFootprint(80, 64, 8, 128, 8192, 70.2e9, 2.49e9, 0.67e9),
    "Qwen/Qwen3-VL-2B-Instruct": ModelFootprint(28, 16, 8, 128, 2048, 1.41e9, 0.31e9, 0.41e9),
    "Qwen/Qwen3-VL-4B-Instruct": ModelFootprint(36, 32, 8, 128, 2560, 3.63e9, 0.39e9, 0.41e9),
    "Qwen/Qwen3-VL-8B-Instruct": ModelFootprint(36, 32, 8, 128, 4096, 6.95e9, 1.24e9, 0.58e9),
    TINY_ALIAS: ModelFootprint(2, 4, 2, 16, 64, 6.6e4, 6.6e4, 3.0e4),
    TINY_QWEN3_VL_ALIAS: ModelFootprint(3, 8, 2, 16, 64, 1.5e5, 6.6e4, 5.0e4),
}
FAMILY_OF_ALIAS = {TINY_ALIAS: "qwen2_5_vl", TINY_QWEN3_VL_ALIAS: "qwen3_vl", "synth": "qwen2_5_vl"}


def footprint_from_config(config: dict) -> ModelFootprint | None:
    """A Qwen2.5-VL checkpoint's footprint from its config.json alone (no weights read); None if not one."""
    text, vision = config.get("text_config") or config, config.get("vision_config") or {}
    try:
        h, layers, inter = text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"]
        heads, kv_heads = text["num_attention_heads"], text["num_key_value_heads"]
        vocab = text["vocab_size"]
    except KeyError:
        return None
    d = text.get("head_dim") or h // heads
    body = layers * (h * d * (heads + 2 * kv_heads) + heads * d * h + 3 * h * inter)  # q,k,v,o + gate/up/down
    embed = vocab * h * (1 if config.get("tie_word_embeddings", text.get("tie_word_embeddings")) else 2)
    vh, vi, depth = vision.get("hidden_size", 0), vision.get("intermediate_size", 0), vision.get("depth", 0)
    vision_params = depth * (4 * vh * vh + 3 * vh * vi) + 4 * vh * vision.get("out_hidden_size", h)
    return ModelFootprint(layers, heads, kv_heads, d, h, float(body), float(embed), float(vision_params))


def footprint_for(model: str) -> ModelFootprint | None:
    """Footprint of a known model id or alias, or of a local checkpoint directory (from its config.json);
    None when neither is known."""
    if model in FOOTPRINTS:
        return FOOTPRINTS[model]
    config = (SHIPPED_CHECKPOINTS / model if model in SHIPPED_ALIASES else Path(model).expanduser()) / "config.json"
    try:
        return footprint_from_config(json.loads(config.read_text()))
    except (OSError, ValueError):
        return None


def family_for_model(model: str) -> ModelFamily:
    """The family of a model name without loading it: an alias's, a local checkpoint's config.json
    `model_type`, else the hub id's name (`Qwen3-VL` in it: Qwen3-VL; otherwise Qwen2.5-VL, as before)."""
    if model in FAMILY_OF_ALIAS:
        return family_named(FAMILY_OF_ALIAS[model])
    config = Path(model).expanduser() / "config.json"
    if config.is_file():
        try:
            return family_of(json.loads(config.read_text()))
        except (OSError, ValueError, ModelError):
            return DEFAULT_FAMILY   # the loader says what is wrong with it
    return family_named("qwen3_vl") if "qwen3-vl" in model.lower() else DEFAULT_FAMILY
