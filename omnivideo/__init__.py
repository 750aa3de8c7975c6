"""OmniVideo: chat about a long local video on one GPU.

One import root for the product's parts (`kernels`, `engine`, `storage`, `app`, `bench`, `ui`, `cli`):
generic top-level names would shadow other distributions (the PyPI `kernels` that transformers imports).
Layers point one way: kernels <- errors / progress / timeline <- engine <- storage <- app <- bench <- ui / cli.
"""
from pathlib import Path as _Path

SHIPPED_CHECKPOINTS = _Path(__file__).resolve().parent / "checkpoints"   # checkpoints inside the package, by alias
