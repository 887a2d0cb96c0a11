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
from .schema import ConfigError, StudyConfig, TaskConfig
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
        problems += check(cfg)
    if problems:
        raise ConfigError(problems)
    return methods.expand_grid(cfg)


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
        if dataclasses.is_dataclass(tp):
            built = _build(tp, value, f"{prefix}{name}.", problems)
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


def _build_tasks(value: Any, problems: list[str]) -> tuple[TaskConfig, ...]:
    if isinstance(value, list):  # `tasks: [openmath, squad]` takes each task's defaults
        value = {name: {} for name in value}
    if not isinstance(value, dict):
        problems.append(f"tasks: expected a mapping of task name to settings, got {value!r}")
        return ()
    tasks = []
    for name, settings in value.items():
        if name not in task_registry.TASKS:
            known = ", ".join(task_registry.TASKS.names())
            problems.append(f"tasks.{name}: unknown task (expected one of {known})")
            continue
        built = _build(TaskConfig, {"name": name, **(settings or {})}, f"tasks.{name}.", problems)
        if built is not None:
            tasks.append(built)
    return tuple(tasks)
