"""The data step: the training pool and each task's evaluation items, from the hub, local files
or synthetic stand-ins, cleaned as each task declares and sampled by seed (datasets.py)."""

from .datasets import prepare

__all__ = ["prepare"]
