"""One training path for every method (loop.py), its precision and optimizer (precision.py), and
a training over several processes (distributed.py launches, launched.py runs in each)."""

from .loop import train

__all__ = ["train"]
