"""The base model: loading it and its tokenizer (loading.py), where it comes from and what it
resolved to (source.py), the built-in offline models (builtin.py) and the tiny model's recipe
(tiny.py, pretraining.py)."""

from .loading import load_kwargs, load_tokenizer
from .source import identity, pinned

__all__ = ["identity", "load_kwargs", "load_tokenizer", "pinned"]
