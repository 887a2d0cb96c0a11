"""Reading a params file: YAML, `-p` overrides, types coerced and checked, then validated
(validate.py); a ConfigError lists every problem."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import yaml

from .. import methods
from .. import tasks as task_registry
from .coerce import coerce, type_name
from .schema import DEFAULT_TRAIN_TASK, HELD_OUT, ConfigError, StudyConfig, TaskConfig
from .validate import check


def load_config(
    path: str | Path, overrides: dict[str, Any] | list[str] | None = None, root: str | Path | None = None
) -> StudyConfig:
    """Read a params file, apply overrides (`{"train.learning_rate": 1e-4}` or
    `["train.learning_rate=1e-4"]`), and validate everything. Raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: params file not found"])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of parameters at the top level"])
    problems: list[str] = []
    for key, value in parse_overrides(overrides, problems).items():
        _set_dotted(raw, key, value, problems)
    if root is not None:
        raw["root"] = str(root)
    cfg = _build(StudyConfig, raw, "", problems)
    if cfg is not None:
        cfg = with_user_data(cfg)
        problems += check(cfg)
    if problems:
        raise ConfigError(problems)
    return methods.expand_grid(cfg)


def with_user_data(cfg: StudyConfig) -> StudyConfig:
    """The study with its own training data (`data.train` in the messages or prompt_completion
    format) as the task the adapters train on, and its held-out rows as a task every method is
    evaluated on, as if both had been listed."""
    train = cfg.data.train
    if train is None or not train.conversations or cfg.data.train_task == HELD_OUT:
        return cfg
    tasks = cfg.tasks
    if train.held_out > 0 and not any(t.name == HELD_OUT for t in tasks):
        max_new = train.max_new_tokens if train.exact_match else None
        tasks = (*tasks, TaskConfig(HELD_OUT, n=train.held_out, max_new_tokens=max_new))
    # data.train_task left at its default is replaced; any other value is refused by validation.
    own = dataclasses.replace(cfg.data, train_task=HELD_OUT)
    data = own if cfg.data.train_task == DEFAULT_TRAIN_TASK else cfg.data
    return dataclasses.replace(cfg, data=data, tasks=tasks)


def parse_overrides(overrides: dict[str, Any] | list[str] | None, problems: list[str]) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(f"override {item!r}: expected KEY=VALUE, e.g. train.learning_rate=1e-4")
            continue
        parsed[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return parsed


def _set_dotted(raw: dict, key: str, value: Any, problems: list[str]) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        if part == "tasks" and isinstance(node.get("tasks"), dict):
            node = node["tasks"]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append(f"{key}: cannot set inside {part!r}, which is not a section")
            return
        node = child
    node[leaf] = value


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    where = prefix.rstrip(".") or "the params file"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a section (mapping), got {raw!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{prefix}{key}: unknown parameter (known here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{prefix}{name}: required")
            continue
        value, tp = raw[name], hints[name]
        section = _optional_section(tp)
        if value is None and section is not tp:
            kwargs[name] = None
        elif dataclasses.is_dataclass(section):
            built = _build(section, value, f"{prefix}{name}.", problems)
            if built is not None:
                kwargs[name] = built
        elif cls is StudyConfig and name == "tasks":
            kwargs[name] = _build_tasks(value, problems)
        else:
            ok, coerced = coerce(tp, value)
            if ok:
                kwargs[name] = coerced
            else:
                problems.append(f"{prefix}{name}: expected {type_name(tp)}, got {value!r}")
    try:
        return cls(**kwargs)
    except TypeError:
        return None  # a required field is missing; already reported


def _optional_section(tp: Any) -> Any:
    """The dataclass of a section that may be left out (`TrainDataConfig | None`), else `tp`."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1 and type(None) in typing.get_args(tp) and dataclasses.is_dataclass(args[0]):
        return args[0]
    return tp


def _build_tasks(value: Any, problems: list[str]) -> tuple[TaskConfig, ...]:
    if isinstance(value, list):  # `tasks: [openmath, squad]` takes each task's defaults
        value = {name: {} for name in value}
    if not isinstance(value, dict):
        problems.append(f"tasks: expected a mapping of task name to settings, got {value!r}")
        return ()
    tasks = []
    for name, settings in value.items():
        declared = isinstance(settings, dict) and settings.get("lm_eval") is not None
        if name == HELD_OUT and not declared:
            problems.append(f"tasks.{name}: the rows data.train.held_out keeps out of training; set their number there")
            continue
        if name not in task_registry.TASKS and not declared:
            known = ", ".join(task_registry.TASKS.names())
            problems.append(
                f"tasks.{name}: unknown task (expected one of {known}, or a task of your own: "
                f"tasks.{name}.lm_eval: an lm-evaluation-harness YAML file or task name)"
            )
            continue
        built = _build(TaskConfig, {"name": name, **(settings or {})}, f"tasks.{name}.", problems)
        if built is not None:
            tasks.append(built)
    return tuple(tasks)
