"""Model families: what differs per family lives in one file each (base.py says what a family decides).

    family = family_of(model.config)          # from the checkpoint's `model_type`
    family = family_named("qwen3_vl")
"""
from omnivideo.engine.family.base import ModelFamily, ProcessorSpec, VideoLayout
from omnivideo.engine.family.qwen2_5_vl import Qwen2_5_VLFamily
from omnivideo.engine.family.qwen3_vl import Qwen3VLFamily
from omnivideo.errors import ModelError

FAMILIES: tuple[ModelFamily, ...] = (Qwen2_5_VLFamily(), Qwen3VLFamily())
DEFAULT_FAMILY = FAMILIES[0]


def family_for_model_type(model_type: str) -> ModelFamily:
    """The family whose checkpoints carry `model_type` (config.json); ModelError for any other model."""
    for family in FAMILIES:
        if model_type in family.model_types:
            return family
    known = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise ModelError(f"model type {model_type!r} is not supported (supported: {known})")


def family_of(config) -> ModelFamily:
    """The family of a loaded model's config (or a config.json dict)."""
    model_type = config.get("model_type", "") if isinstance(config, dict) else getattr(config, "model_type", "")
    return family_for_model_type(model_type)


def family_named(name: str) -> ModelFamily:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise ModelError(f"unknown model family {name!r} (known: {', '.join(f.name for f in FAMILIES)})")


__all__ = ["DEFAULT_FAMILY", "FAMILIES", "ModelFamily", "ProcessorSpec", "VideoLayout", "family_for_model_type",
           "family_named", "family_of"]
