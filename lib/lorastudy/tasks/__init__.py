"""The evaluation tasks, each declared once: where its data comes from and how it is cleaned,
how an item becomes a prompt, how an output is scored, which metrics it reports (with their
direction, aggregation and test) and its version. Like an lm-evaluation-harness task config,
a declaration is all the rest of lorastudy knows of a task: data preparation, evaluation, the
result tables and the report read it and hold no per-task branches.

Adding a task: write a module beside `openmath.py` that builds a `Task`, and register it
below (or call `register(task)` from your own code before a study runs). A study can also
declare tasks in its params without Python: its own training data (`data.train`, user_data.py)
and lm-evaluation-harness task files (`tasks.<name>.lm_eval`, harness.py); `get(name, cfg)`
finds those (lookup.py).
"""

from . import arc_challenge, openmath, squad
from .declaration import (
    ACC,
    ACC_NORM,
    REFERENCE_KEY,
    TASKS,
    Cleaned,
    HubSource,
    Metric,
    Task,
    chat_prompt,
    example_ids,
    multiple_choice,
    register,
    text,
    training_ids,
)
from .lookup import get, known, study_tasks

for _module in (arc_challenge, openmath, squad):
    register(_module.TASK)

__all__ = [
    "ACC",
    "ACC_NORM",
    "REFERENCE_KEY",
    "TASKS",
    "Cleaned",
    "HubSource",
    "Metric",
    "Task",
    "chat_prompt",
    "example_ids",
    "get",
    "known",
    "multiple_choice",
    "register",
    "study_tasks",
    "text",
    "training_ids",
]
