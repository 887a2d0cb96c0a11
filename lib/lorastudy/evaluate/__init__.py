"""Evaluating one run on the study's tasks: log-likelihood tasks (loglikelihood.py), generation
(generation.py), latency at batch size 1 (latency.py), and the evaluation step that runs them (step.py)."""

from .step import evaluate

__all__ = ["evaluate"]
