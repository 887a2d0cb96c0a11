"""The evaluation tasks, each declared once: where its data comes from and how it is cleaned,
how an item becomes a prompt, how an output is scored, which metrics it reports (with their
direction, aggregation and test) and its version. Like an lm-evaluation-harness task config,
a declaration is all the rest of lorastudy knows of a task: data preparation, evaluation, the
result tables and the report read it and hold no per-task branches.

Adding a task: write a module beside `openmath.py` that builds a `Task`, and register it
below (or call `register(task)` from your own code before a study runs).
"""

from . import arc_challenge, openmath, squad
from .declaration import (
    ACC,
    ACC_NORM,
    TASKS,
    Cleaned,
    HubSource,
    Metric,
    Task,
    chat_prompt,
    example_ids,
    get,
    multiple_choice,
    register,
    text,
)

for _module in (arc_challenge, openmath, squad):
    register(_module.TASK)

__all__ = [
    "ACC",
    "ACC_NORM",
    "TASKS",
    "Cleaned",
    "HubSource",
    "Metric",
    "Task",
    "chat_prompt",
    "example_ids",
    "get",
    "multiple_choice",
    "register",
    "text",
]
