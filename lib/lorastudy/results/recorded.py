"""What the report step reads: the study's recorded runs (training and evaluation records, per-item
scores) loaded once into a StudyResults, and the tables written from it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lorastudy import methods, tasks
from lorastudy.study.paths import StudyPaths
from lorastudy.study.schema import Run, StudyConfig


@dataclass
class StudyResults:
    cfg: StudyConfig
    paths: StudyPaths
    runs: list[Run]
    train: dict[str, dict]
    evals: dict[str, dict]
    items: dict[tuple[str, str], list[dict]]  # (run, task) -> predictions, in item order
    data_summary: dict
    # Each linear layer's error and stored bytes per format, from the 01_quantization step (empty
    # where the study quantizes nothing), and its per-format summary.
    quantization: pd.DataFrame = field(default_factory=pd.DataFrame)
    quantization_summary: dict = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics_by_seed: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)
    losses: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Per trained run, how much its validation loss fell over its last quarter (convergence.py).
    convergence: pd.DataFrame = field(default_factory=pd.DataFrame)
    latency: pd.DataFrame = field(default_factory=pd.DataFrame)
    generation: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def methods(self) -> list[str]:
        return list(self.cfg.methods)

    def method_runs(self, method: str) -> list[Run]:
        return [r for r in self.runs if r.method == method]

    def trained(self, method: str) -> bool:
        return methods.get(method, self.cfg).trains

    def item_scores(self, method: str, task: str, metric: str) -> np.ndarray:
        """Per-item scores of a method, averaged over its seeds' runs."""
        return np.mean(self.run_scores(method, task, metric), axis=0)

    def run_scores(self, method: str, task: str, metric: str) -> np.ndarray:
        """Per-item scores of a method, one row per seed's run: (runs, items)."""
        key = tasks.get(task, self.cfg).metric(metric).key
        per_run = [[it["scores"][key] for it in self.items[(r.name, task)]] for r in self.method_runs(method)]
        return np.array(per_run, dtype=float).reshape(len(per_run), -1)


def _check_aligned(items: dict, runs: list[Run], cfg: StudyConfig) -> None:
    """Paired statistics need every run scored on the same items in the same order."""
    for t in cfg.tasks:
        ids = [[it["id"] for it in items[(r.name, t.name)]] for r in runs]
        if any(i != ids[0] for i in ids[1:]):
            raise ValueError(f"runs were evaluated on different {t.name} items; rerun with --force")
