"""Errors a user or the environment can cause.

Everything a person can act on is an `OmniVideoError`; the CLI and the UI translate it into one
clean line (`error: ...`, exit code 2). Internal invariants use `assert` instead.
"""


class OmniVideoError(Exception):
    "Base class for errors a user can act on"


class ConfigError(OmniVideoError):
    "A configuration value is out of range"


class VideoError(OmniVideoError):
    "The video could not be opened, decoded or sampled"


class VideoCancelled(OmniVideoError):
    "Video sampling was cancelled"


class ModelError(OmniVideoError):
    "The model could not be resolved or loaded"


class DeviceError(OmniVideoError):
    "The requested option needs hardware this machine does not have"


class CacheError(OmniVideoError):
    "The persistent KV cache could not be read or written"


class CacheEntryCorrupt(CacheError):
    "A stored KV cache entry failed its checksum"


class DiskFullError(CacheError):
    "There is not enough disk space to store the entry"


class SessionError(OmniVideoError):
    "The chat session does not exist or does not match"


def is_out_of_memory(e: BaseException) -> bool:
    """Host OOM (MemoryError) or CUDA OOM (torch.cuda.OutOfMemoryError, a RuntimeError subclass)."""
    if isinstance(e, MemoryError):
        return True
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError)
