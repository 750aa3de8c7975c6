"""Model loading through the real `from_pretrained` path.

A CUDA GPU gets the language model in NF4 (bitsandbytes) with the vision tower and lm_head in bf16;
a CPU gets fp32 (bf16 on request). The `tiny` alias resolves to a checkpoint built locally (see
`omnivideo.engine.tiny_model`), `synth` to the checkpoint trained on synthetic videos that ships in
`omnivideo/checkpoints/synth/` (its MODEL_CARD.md); both then go through exactly the same code.

    loaded = load_model(LoadOptions(model="tiny", models_dir=Path("~/.local/share/omnivideo/models")))
"""
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from omnivideo.engine.attention import ATTN_NAME, register_attention
from omnivideo.engine.family import DEFAULT_FAMILY, ModelFamily, family_of
from omnivideo.engine.tiny_model import TINY_BUILDERS
from omnivideo.engine.weights_fingerprint import fingerprint_checkpoint
from omnivideo import SHIPPED_CHECKPOINTS
from omnivideo.errors import ConfigError, DeviceError, ModelError

log = logging.getLogger(__name__)

TINY_ALIAS = "tiny"
# Checkpoints that ship inside the package, loaded through from_pretrained like any local directory.
SHIPPED = {"synth": SHIPPED_CHECKPOINTS / "synth"}
FINGERPRINT_MEMO = ".fingerprints.json"  # under the models dir: checkpoint file digests by path and stat
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTS = ("auto", "nf4", "none")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    model: str
    models_dir: Path
    device: str = "auto"
    dtype: str = "auto"
    quant: str = "auto"
    revision: str | None = None

    def __post_init__(self):
        if self.device not in DEVICES:
            raise ConfigError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.quant not in QUANTS:
            raise ConfigError(f"quant must be one of {', '.join(QUANTS)}, got {self.quant!r}")


@dataclass
class LoadedModel:
    """A loaded model and what the engine and the cache key need to know about it."""
    model: torch.nn.Module
    tokenizer: object
    model_id: str            # what the user asked for (hub id, path or alias)
    revision: str            # commit hash or content hash of the checkpoint: part of every cache key
    device: torch.device
    dtype: torch.dtype
    quantization: str        # "nf4" or "none"
    extra: dict = field(default_factory=dict)
    family: ModelFamily = DEFAULT_FAMILY   # what differs per model family (omnivideo/engine/family/)

    @property
    def text_config(self):
        return self.model.config.text_config

    @property
    def vision_config(self):
        return self.model.config.vision_config


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was requested but no CUDA GPU is available on this machine")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def resolve_checkpoint(options: LoadOptions) -> str:
    """Hub id or local directory to hand to `from_pretrained`; builds the tiny checkpoint on demand."""
    if options.model in TINY_BUILDERS:   # `tiny`, `tiny-qwen3-vl`: random checkpoints built locally
        return str(TINY_BUILDERS[options.model](options.models_dir))
    if options.model in SHIPPED:
        path = SHIPPED[options.model]
        if not (path / "config.json").is_file():
            raise ModelError(f"the '{options.model}' checkpoint is missing from this install ({path})")
        return str(path)
    path = Path(options.model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"'{options.model}' is a path but not a model checkpoint (no config.json in it)")
        return str(path.resolve())
    if options.model.count("/") != 1 or options.model.startswith((".", "/")):
        raise ModelError(f"unknown model '{options.model}': not a local checkpoint and not a hub id "
                         "like Qwen/Qwen2.5-VL-7B-Instruct (or use --model tiny)")
    return options.model


def checkpoint_revision(model, memo: Path | None = None) -> str:
    """The hub commit when known, else a digest of the local checkpoint's files by content
    (omnivideo/engine/weights_fingerprint.py; `memo` remembers it by path and stat)."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return commit
    return fingerprint_checkpoint(Path(getattr(model.config, "_name_or_path", "") or "."), memo)


# Modules bitsandbytes must leave in 16 bits: the vision tower (quantizing it costs accuracy and saves little;
# our fused blocks need plain nn.Linear layers) and lm_head. transformers 5.x matches these patterns from the
# START of the full module name ("model.visual.blocks.0..."), so the bare "visual" that 4.x needed matches
# nothing there: on 5.17 the tiny model's tower came out quantized (H100 probe, scripts/gpu/load_probe.py).
# Each family lists its own (omnivideo/engine/family/); this is Qwen2.5-VL's.
NF4_SKIP_MODULES = list(DEFAULT_FAMILY.nf4_skip_modules)


def _quantization_config(quant: str, device: torch.device, family: ModelFamily = DEFAULT_FAMILY):
    if quant == "none" or (quant == "auto" and device.type != "cuda"):
        return None, "none"
    if device.type != "cuda":
        raise DeviceError("--quant nf4 needs a CUDA GPU: bitsandbytes NF4 on the CPU is a correctness path only")
    from transformers import BitsAndBytesConfig

    cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=list(family.nf4_skip_modules))
    return cfg, "nf4"


def _checkpoint_family(source: str, options: LoadOptions) -> ModelFamily:
    """The family from the checkpoint's config alone (before any weight is read: NF4 needs its skip list)."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source, revision=options.revision)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"could not load model '{options.model}': {first}") from e
    try:
        return family_of(config)
    except ModelError as e:
        raise ModelError(f"model '{options.model}': {e}") from e


def load_model(options: LoadOptions) -> LoadedModel:
    """Load tokenizer + a Qwen2.5-VL / Qwen3-VL model through `from_pretrained`, with our attention on the
    text layers and its family's fused rewrites."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    device = resolve_device(options.device)
    dtype = _resolve_dtype(options.dtype, device)
    source = resolve_checkpoint(options)
    family = _checkpoint_family(source, options)
    quant_cfg, quant_name = _quantization_config(options.quant, device, family)
    register_attention()
    # The vision tower is built with "sdpa" and switched to ours after loading: a "flash" name at
    # construction makes transformers look for a flash-attn build or hub kernel (omnivideo/engine/fused/vision_attention.py).
    kwargs = dict(dtype=dtype, revision=options.revision,
                  attn_implementation={"text_config": ATTN_NAME, "vision_config": "sdpa"})
    if quant_cfg is not None:
        kwargs.update(quantization_config=quant_cfg, device_map={"": device.index or 0})
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=options.revision)
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"could not load model '{options.model}': {first}") from e
    if quant_cfg is None:
        model = model.to(device)
    model.eval()
    family.fuse(model, quant_name)   # vision tower, norms, rotary, MLP, NF4 GEMV: what the family supports
    loaded = LoadedModel(model=model, tokenizer=tokenizer, model_id=options.model,
                         revision=checkpoint_revision(model, options.models_dir / FINGERPRINT_MEMO), device=device, dtype=dtype,
                         quantization=quant_name, family=family)
    log.info("loaded %s (%s, %s) on %s, dtype %s, quantization %s", options.model, family.name, loaded.revision,
             device, dtype, quant_name)
    return loaded


def describe(loaded: LoadedModel) -> str:
    """One JSON line describing what is loaded (for logs and --json output)."""
    return json.dumps({"model": loaded.model_id, "family": loaded.family.name, "revision": loaded.revision,
                       "device": str(loaded.device),
                       "dtype": str(loaded.dtype).replace("torch.", ""), "quantization": loaded.quantization})
