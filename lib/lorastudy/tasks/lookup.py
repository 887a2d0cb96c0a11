"""Finding a task by name: a registered one (built-in, or one code outside lorastudy registered),
or one a study's params declare: its own training data (data.train, whose held-out rows are the
task `held_out`) and each task given by an lm-evaluation-harness file (tasks.<name>.lm_eval).
Those are derived from the study alone, so every kernel derives the same, and never registered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..study.schema import HELD_OUT
from . import harness, user_data
from .declaration import TASKS, Task

if TYPE_CHECKING:
    from ..study.schema import StudyConfig


def study_tasks(cfg: StudyConfig) -> dict[str, Task]:
    """The tasks a study's params declare, by name (validated params: see study.validate)."""
    derived = {}
    train = cfg.data.train
    if train is not None and train.conversations:
        derived[HELD_OUT] = user_data.declaration(train)
    for t in cfg.tasks:
        if t.lm_eval is not None:
            derived[t.name] = harness.declaration(t.name, t.lm_eval, Path(cfg.root))
    return derived


def get(name: str, cfg: StudyConfig | None = None) -> Task:
    """The task `name`: one the study's params declare, else a registered one."""
    if cfg is not None:
        derived = study_tasks(cfg)
        if name in derived:
            return derived[name]
    return TASKS.get(name)


def known(name: str, cfg: StudyConfig | None = None) -> bool:
    return name in TASKS or (cfg is not None and name in study_tasks(cfg))
