"""Evaluating one run on the study's tasks: log-likelihood tasks (loglikelihood.py), generation
and latency (generation.py), and the evaluation step that runs them (step.py)."""

from .step import evaluate

__all__ = ["evaluate"]
