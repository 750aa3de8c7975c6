"""Known models: aliases, defaults and the size figures the planner needs without loading weights.

A model is named by a hub id (`Qwen/Qwen2.5-VL-7B-Instruct`), a local checkpoint directory, or the
alias `tiny` (a random 2-layer Qwen2.5-VL built offline under the data dir: answers are noise).
"""
from dataclasses import dataclass

DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
TINY_ALIAS = "tiny"


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


FOOTPRINTS: dict[str, ModelFootprint] = {
    "Qwen/Qwen2.5-VL-3B-Instruct": ModelFootprint(36, 16, 2, 128, 2048, 2.77e9, 0.31e9, 0.67e9),
    "Qwen/Qwen2.5-VL-7B-Instruct": ModelFootprint(28, 28, 4, 128, 3584, 6.53e9, 1.09e9, 0.67e9),
    "Qwen/Qwen2.5-VL-32B-Instruct": ModelFootprint(64, 40, 8, 128, 5120, 31.2e9, 1.56e9, 0.67e9),
    "Qwen/Qwen2.5-VL-72B-Instruct": ModelFootprint(80, 64, 8, 128, 8192, 70.2e9, 2.49e9, 0.67e9),
    TINY_ALIAS: ModelFootprint(2, 4, 2, 16, 64, 6.6e4, 6.6e4, 3.0e4),
}


def footprint_for(model: str) -> ModelFootprint | None:
    """Footprint of a known model id or alias; None for an unknown local checkpoint."""
    return FOOTPRINTS.get(model)
