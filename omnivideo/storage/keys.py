"""CacheKey: everything that shapes the bytes of a stored video KV prefix.

Two keys with any differing field give different digests, so a changed input (another fps, model
revision, prompt prefix, file content...) is a cache miss, never a hit on the wrong entry.

    key = CacheKey(video_sha256=store.fingerprint(path), sampling={"fps": 2.0, "max_frames": 768},
                   model_id="Qwen/Qwen2.5-VL-7B-Instruct", model_revision="cc59489", quantization="nf4",
                   dtype="bfloat16", prefix_tokens_sha256=sha, attention_preset="balanced",
                   kernel_version="code-3f9c1a0b2d4e6f81", engine={"chunk_size": 4096, "sparse.gamma": 0.95},
                   stack={"torch": "2.11.0", "transformers": "5.17.0", "device": "NVIDIA H200"})
    key.digest()   # 64 hex chars, the identity of the entry
"""
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from omnivideo.errors import CacheError

# Bump when the on-disk layout or the meaning of stored tensors changes: old entries then miss.
FORMAT_VERSION = 1

_SHA256 = re.compile(r"[0-9a-f]{64}")
_SCALARS = (str, int, float, bool, type(None))


def _canonical_pairs(what: str, values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[tuple[str, Any], ...]:
    """Sorted (name, value) pairs with JSON scalar values; raises CacheError on anything else."""
    pairs = list(values.items()) if isinstance(values, Mapping) else [tuple(p) for p in values]
    names = [p[0] for p in pairs]
    if any(len(p) != 2 or not isinstance(p[0], str) for p in pairs) or len(set(names)) != len(names):
        raise CacheError(f"{what} must be unique (name, value) pairs, got {pairs!r}")
    for name, value in pairs:
        if not isinstance(value, _SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
            raise CacheError(f"{what} value {name}={value!r} must be a finite JSON scalar")
    return tuple(sorted(pairs))


PAIR_FIELDS = ("sampling", "engine", "stack")


@dataclass(frozen=True)
class CacheKey:
    """Identity of one stored prefix KV. `sampling`, `engine` and `stack` may be given as dicts; they are
    stored as sorted pairs.

    - sampling: the frame sampling (fps, frame and pixel limits, time range);
    - engine: the prefill's shape (chunk and round sizes, vision chunking) and the preset's parameter values;
    - stack: what computes the bytes (torch / transformers / triton / bitsandbytes versions, the device
      model, the dense attention backend picked at run time): another machine's entry misses.
    Note that `1` and `1.0` are different JSON values: the engine must build values consistently
    (a mismatch only costs a miss, never a wrong hit).
    """
    video_sha256: str
    sampling: tuple[tuple[str, Any], ...]
    model_id: str
    model_revision: str
    quantization: str
    dtype: str
    prefix_tokens_sha256: str
    attention_preset: str
    kernel_version: str
    engine: tuple[tuple[str, Any], ...] = ()
    stack: tuple[tuple[str, Any], ...] = ()
    format_version: int = FORMAT_VERSION
    _digest: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in PAIR_FIELDS:
            object.__setattr__(self, name, _canonical_pairs(name, getattr(self, name)))
        for name in ("video_sha256", "prefix_tokens_sha256"):
            value = getattr(self, name)
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                raise CacheError(f"{name} must be 64 lowercase hex characters, got {value!r}")
        for name in ("model_id", "model_revision", "quantization", "dtype", "attention_preset", "kernel_version"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise CacheError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.format_version, bool) or not isinstance(self.format_version, int) or self.format_version < 1:
            raise CacheError(f"format_version must be a positive int, got {self.format_version!r}")
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        object.__setattr__(self, "_digest", hashlib.sha256(canonical.encode()).hexdigest())

    def digest(self) -> str:
        """sha256 hex of the canonical JSON of every field."""
        return self._digest

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (sampling as a list of pairs); `from_dict` inverts it."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        for name in PAIR_FIELDS:
            out[name] = [list(p) for p in getattr(self, name)]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CacheKey":
        """Inverse of `to_dict`; a key written before `engine` / `stack` existed reads with them empty
        (so it never equals a key of this version: an old entry misses)."""
        names = {f.name for f in fields(cls) if f.init}
        optional = {"engine", "stack"}
        if not names - optional <= set(data) <= names:
            raise CacheError(f"cache key fields {sorted(data)} do not match {sorted(names)}")
        pairs = {name: [tuple(p) for p in data.get(name, ())] for name in PAIR_FIELDS}
        return cls(**{**data, **pairs})

    def differences(self, other: "CacheKey") -> list[str]:
        """Human-readable field differences (for `cache ls` / `cache import`): "stack.transformers 5.17.0 -> 5.25.0"."""
        out = []
        for f in fields(self):
            if not f.init or getattr(self, f.name) == getattr(other, f.name):
                continue
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name in PAIR_FIELDS:
                a, b = dict(mine), dict(theirs)
                out += [f"{f.name}.{k} {a.get(k, '-')} -> {b.get(k, '-')}" for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k)]
            else:
                out.append(f"{f.name} {mine} -> {theirs}")
        return out
