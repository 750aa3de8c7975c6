"""What differs per model family, behind one small interface; the engine loop, kernels, store and app are shared.

A family (Qwen2.5-VL, Qwen3-VL) decides: the video processor's constants (patch size, normalisation, whether
frames carry timestamp text), the prompt of a video, the M-RoPE positions of the prefix, the visual features
the vision tower hands the decoder (Qwen3-VL's DeepStack adds some after the first decoder layers), the KV
shape, the modules NF4 must leave in 16 bits and the fused rewrites installed at load time. The family of a
checkpoint comes from its config's `model_type` (`omnivideo.engine.family.family_of`).

    family = family_of(model.config)                     # Qwen2_5_VLFamily() / Qwen3VLFamily()
    layout = VideoLayout.from_frames((t, h, w), merge_size=2, frame_times_s=plan.timestamps_s)
    prefix = family.prefix_ids(chat, layout)             # the video's prompt, placeholder expanded
    feats = family.encode_video(model, pixels, grid)     # [n, (1 + deepstack) * hidden]
"""
from dataclasses import dataclass, field

import torch

from omnivideo.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ProcessorSpec:
    """The video processor's constants: patch and merge sizes, normalisation, and whether each temporal frame
    group is preceded by its time as text (`<{t:.1f} seconds>`, Qwen3-VL). `factor` = patch * merge: resized
    frame sides are multiples of it (28 for Qwen2.5-VL, 32 for Qwen3-VL)."""
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    timestamps: bool = False

    def __post_init__(self):
        if min(self.patch_size, self.temporal_patch_size, self.merge_size) < 1:
            raise ConfigError(f"patch, temporal patch and merge sizes must be >= 1: {self}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ConfigError(f"need 3 channel means and 3 positive stds: {self}")

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def record(self) -> dict:
        """Flat JSON scalars for the cache key (`processor.patch_size`, ...): another processor, another entry."""
        out = {"processor.patch_size": self.patch_size, "processor.temporal_patch_size": self.temporal_patch_size,
               "processor.merge_size": self.merge_size, "processor.timestamps": self.timestamps}
        out.update({f"processor.mean{i}": float(m) for i, m in enumerate(self.image_mean)})
        out.update({f"processor.std{i}": float(s) for i, s in enumerate(self.image_std)})
        return out


@dataclass(frozen=True, slots=True)
class VideoLayout:
    """Where a video's tokens go: its grid (t, h, w) in patches before the spatial merge, and the time of
    each temporal frame group in seconds (the mean of its frames' times, as transformers' Qwen3VLProcessor
    computes them; only families with timestamp text read them)."""
    grid_thw: tuple[int, int, int]
    merge_size: int
    group_times_s: tuple[float, ...] = field(default=())

    def __post_init__(self):
        t, h, w = self.grid_thw
        if min(t, h, w) < 1 or h % self.merge_size or w % self.merge_size:
            raise ConfigError(f"grid {self.grid_thw} does not hold whole {self.merge_size}x{self.merge_size} merges")
        if self.group_times_s and len(self.group_times_s) != t:
            raise ConfigError(f"{len(self.group_times_s)} group times for {t} frame groups")

    @property
    def tokens_per_group(self) -> int:
        return self.grid_thw[1] * self.grid_thw[2] // self.merge_size ** 2

    @property
    def num_visual_tokens(self) -> int:
        return self.grid_thw[0] * self.tokens_per_group

    @classmethod
    def from_frames(cls, grid_thw, merge_size: int, frame_times_s, temporal_patch_size: int = 2) -> "VideoLayout":
        """From the sampled frames' times: an odd count is padded with the last frame (as the processor pads
        the frames), then each group's time is the mean of its first and last frame's."""
        times = [float(t) for t in frame_times_s]
        if times and len(times) % temporal_patch_size:
            times += [times[-1]] * (temporal_patch_size - len(times) % temporal_patch_size)
        groups = tuple((times[i] + times[i + temporal_patch_size - 1]) / 2
                       for i in range(0, len(times), temporal_patch_size))
        return cls(tuple(int(x) for x in grid_thw), merge_size, groups)

    def to_dict(self) -> dict:
        return {"grid_thw": list(self.grid_thw), "merge_size": self.merge_size,
                "group_times_s": list(self.group_times_s)}

    @classmethod
    def from_dict(cls, data: dict) -> "VideoLayout":
        return cls(tuple(data["grid_thw"]), int(data["merge_size"]), tuple(data.get("group_times_s") or ()))


class ModelFamily:
    """The per-family interface. Subclasses set the class attributes and override what differs."""
    name: str = ""
    model_types: tuple[str, ...] = ()
    processor: ProcessorSpec
    # bitsandbytes must leave these in 16 bits; transformers 5.x matches them from the START of the full
    # module name ("model.visual.blocks.0..."), so each family lists the full prefixes (docs/engine.md)
    nf4_skip_modules: tuple[str, ...] = ("model.visual", "visual", "lm_head")
    modeling = None   # the transformers modeling module (its `apply_rotary_pos_emb` is what rotary fusion wraps)

    # -- shapes -------------------------------------------------------------------------------------------
    def kv_shape(self, text_config) -> tuple[int, int, int]:
        """(layers, KV heads, head dim) of the language model's cache."""
        head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
        return text_config.num_hidden_layers, text_config.num_key_value_heads, head_dim

    def deepstack_layers(self, model) -> int:
        """How many decoder layers get visual features added after them (0: none)."""
        return 0

    # -- prompt and positions -----------------------------------------------------------------------------
    def prefix_ids(self, chat, layout: VideoLayout) -> list[int]:
        """The question-independent prefix of `chat` (a ChatFormat) with the video of `layout` in it."""
        raise NotImplementedError

    def rope_index(self, model, ids: torch.Tensor, is_video: torch.Tensor, grid_thw: tuple[int, int, int],
                   second_per_grid_t) -> tuple[torch.Tensor, int]:
        """M-RoPE positions [3, 1, N] of the prefix ids [1, N] and the rope delta of the text after it.
        `second_per_grid_t()` gives the seconds per temporal grid step (it may block until known)."""
        raise NotImplementedError

    def sparse_text_mask(self, ids: torch.Tensor, is_video: torch.Tensor, config) -> torch.Tensor:
        """[N] bool: tokens whose query blocks the sparse prefill keeps dense (text outside the video)."""
        return ~is_video[0]

    # -- vision ---------------------------------------------------------------------------------------------
    def encode_video(self, model, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """Vision tower + merger(s): [P, C*T*p*p] -> [P / merge^2, (1 + deepstack_layers) * hidden]: the
        embeddings that replace the video tokens, then the features added after each DeepStack layer."""
        out = model.model.get_video_features(pixel_values, grid_thw)
        return torch.cat(out.pooler_output, dim=0)

    def inject(self, hidden: torch.Tensor, visual_mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """hidden [1, T, H] after a DeepStack layer, visual_mask [1, T] bool, features [n_visual, H] ->
        hidden with the features added at the visual rows (transformers' `_deepstack_process`, same ops)."""
        hidden = hidden.clone()
        hidden[visual_mask, :] = hidden[visual_mask, :] + features.to(hidden.device, hidden.dtype)
        return hidden

    # -- loading --------------------------------------------------------------------------------------------
    def fuse(self, model, quantization: str) -> None:
        """Install the family's fused rewrites on a freshly loaded model (omnivideo/engine/fused/)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
