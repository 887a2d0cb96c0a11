"""Tasks declared in lm-evaluation-harness YAML files (or shipped with an installed lm-eval), as
lorastudy task declarations. The harness stays the authority on what its fields mean: its own
loader reads the YAML (`include:`, `!function`), its task object loads the data and builds the
requests, and its evaluator scores them (evaluate/harness.py); what lorastudy reads of the config
is only what a declaration states: the kind of output, the metrics with their direction, the
token limit. The declaration is derived from the study's params, never registered.

lm-eval is an optional extra (`make install EXTRAS=lm_eval`); it is imported only here, inside
functions, so a study without such a task never needs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .declaration import Cleaned, HubSource, Metric, Task

# The harness's output types lorastudy evaluates, and the kind of task each is.
KINDS = {"multiple_choice": "loglikelihood", "generate_until": "generate"}


# Metrics the harness scores 0 or 1 per item: exact intervals and McNemar's test apply.
BINARY = {"acc", "acc_norm", "exact_match", "acc_mutual_info"}


# HFLM's token limit for a generate_until task whose generation_kwargs give no max_gen_toks.
HARNESS_MAX_GEN_TOKS = 256


INSTALL = "needs lm-evaluation-harness: make install EXTRAS=lm_eval (or pip install 'lm-eval[hf]==0.4.13')"


class HarnessError(ValueError):
    """An lm-eval task that lorastudy cannot evaluate, in words naming why."""


def require() -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise HarnessError(INSTALL) from None


@dataclass(frozen=True)
class HarnessTask:
    """Where an lm-eval task is declared, and its config as the harness's loader reads it."""

    spec: str  # as the params file names it: a YAML path or a task name
    yaml_path: Path
    task_name: str  # the config's `task:`
    shipped: bool  # one of lm-eval's own tasks, found by name
    config: dict = field(compare=False, hash=False, repr=False)

    @property
    def folder(self) -> Path:
        return self.yaml_path.parent

    def load(self):
        """The harness's task object, its data loaded. It runs in the YAML's folder, so a relative
        `data_files` path is read beside the YAML (the harness reads it from the working directory,
        and each lorastudy step runs in its own)."""
        require()
        from lm_eval.tasks import TaskManager

        with working_dir(self.folder):
            if self.shipped:
                loaded = shipped_manager().load(self.task_name)
            else:
                loaded = TaskManager(include_defaults=False).load(str(self.yaml_path))
        return loaded["tasks"][self.task_name]

    def data_files(self) -> list[Path]:
        """The local files its `dataset_kwargs.data_files` names, found as `load` finds them."""
        files = (self.config.get("dataset_kwargs") or {}).get("data_files")
        names = files.values() if isinstance(files, dict) else [files] if files else []
        flat = [n for item in names for n in (item if isinstance(item, list) else [item])]
        found = [self.folder / n for n in flat if isinstance(n, str)]
        return sorted({p.resolve() for p in found if p.is_file()})


@contextlib.contextmanager
def working_dir(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _is_file(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) or "/" in spec or os.sep in spec


@cache
def shipped_manager():
    """lm-eval's index of the tasks it ships (it reads every YAML it has: seconds), once a process."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def locate(spec: str, root: Path) -> HarnessTask:
    """The task a params file names: a YAML file (relative to the study's root), else a task an
    installed lm-eval ships. Raises HarnessError saying what it is not."""
    require()
    from lm_eval.tasks._yaml_loader import load_yaml  # the loader lm-eval 0.4.13's TaskManager uses

    path = Path(spec).expanduser()
    path = path if path.is_absolute() else root / path
    if path.is_file():
        try:
            config = load_yaml(path, resolve_func=False)
        except Exception as exc:  # a YAML error, an include that is missing, an include cycle
            raise HarnessError(f"{path}: not an lm-eval task file the harness can read ({exc})") from None
        yaml_path, shipped = path.resolve(), False
    elif _is_file(spec):
        raise HarnessError(f"no file {path}")
    else:
        entry = shipped_manager().task_index.get(spec)
        if entry is None:
            raise HarnessError(f"no file {path}, and no task of that name in lm-eval's own tasks")
        if entry.yaml_path is None or entry.cfg is None:
            raise HarnessError(f"{spec!r} is an lm-eval {entry.kind.name.lower()}, not a single task")
        config, yaml_path, shipped = dict(entry.cfg), Path(entry.yaml_path), True
    return HarnessTask(spec, yaml_path, config.get("task") or "", shipped, config)


def problems(task: HarnessTask) -> list[str]:
    """What keeps lorastudy from evaluating a task with per-item statistics."""
    config = task.config
    if "group" in config or "class" in config or not task.task_name:
        return [f"{task.yaml_path}: declares a group or a Python task class; name one task of it"]
    if not isinstance(task.task_name, str):
        return [f"{task.yaml_path}: task: expected one task name, got {task.task_name!r}"]
    output_type = config.get("output_type", "generate_until")
    if output_type not in KINDS:
        return [f"output_type {output_type!r} is not supported (supported: {', '.join(KINDS)})"]
    # The harness's own evaluator refuses these too, but only once the evaluation runs, after training.
    media = [key for key in ("doc_to_image", "doc_to_audio") if config.get(key)]
    if media:
        return [f"{media[0]}: a multimodal task is not supported (lorastudy evaluates text models)"]
    if config.get("unsafe_code", False) is not False:
        return ["unsafe_code: a task the harness marks unsafe (it runs generated code) is not supported"]
    out = []
    for metric in _metric_list(config):
        name, aggregation = (
            metric.get("metric"),
            metric.get("aggregation") or _default_aggregation(metric.get("metric")),
        )
        if isinstance(name, str) and Path(name).is_absolute():  # `!function`, unresolved: the function's path
            out.append(
                f"metric_list: !function {Path(name).name} is not a metric name (a metric defined in Python is not "
                "supported)"
            )
        elif not isinstance(name, str):
            out.append(f"metric_list: {name!r} is not a metric name (a metric defined in Python is not supported)")
        elif aggregation != "mean":
            out.append(
                f"metric_list: {name} aggregates by {aggregation!r}, not by a mean over items, so per-item intervals "
                "and paired tests do not apply to it"
            )
    return out


def _metric_list(config: dict) -> list[dict]:
    import lm_eval.api.metrics  # noqa: F401  (fills the harness's metric registries)
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY

    listed = config.get("metric_list")
    if listed is None:
        return [{"metric": name} for name in DEFAULT_METRIC_REGISTRY[config.get("output_type", "generate_until")]]
    return [m if isinstance(m, dict) else {"metric": m} for m in listed]


def _default_aggregation(name: Any) -> str | None:
    from lm_eval.api.registry import AGGREGATION_REGISTRY, METRIC_AGGREGATION_REGISTRY

    if not isinstance(name, str) or name not in METRIC_AGGREGATION_REGISTRY:
        return None
    function = METRIC_AGGREGATION_REGISTRY.get(name)
    return next((key for key, value in AGGREGATION_REGISTRY.items() if value is function), None)


def _higher_is_better(metric: dict) -> bool:
    from lm_eval.api.registry import HIGHER_IS_BETTER_REGISTRY

    if "higher_is_better" in metric:
        return bool(metric["higher_is_better"])
    name = metric["metric"]
    return bool(HIGHER_IS_BETTER_REGISTRY.get(name)) if name in HIGHER_IS_BETTER_REGISTRY else True


def filters(config: dict) -> list[str]:
    """The harness's filter names: each gives its own score per metric ('none' when it has none)."""
    return [f["name"] for f in config.get("filter_list") or []] or ["none"]


def score_key(metric: str, filter_name: str, config: dict) -> str:
    """A metric's per-item key in lorastudy: its name, or with several filters `metric_filter`."""
    return metric if len(filters(config)) == 1 else f"{metric}_{filter_name}"


def declared_metrics(task: HarnessTask) -> tuple[Metric, ...]:
    out = []
    for filter_name in filters(task.config):
        for metric in _metric_list(task.config):
            name = score_key(metric["metric"], filter_name, task.config)
            binary = metric["metric"] in BINARY
            how = "" if filter_name == "none" else f", after the harness's {filter_name} filter"
            out.append(
                Metric(
                    name,
                    _higher_is_better(metric),
                    binary,
                    f"lm-evaluation-harness's {metric['metric']} for {task.task_name}{how}",
                    primary=not out,
                    test="mcnemar_exact" if binary else "paired_permutation",
                )
            )
    return tuple(out)


def fingerprint(task: HarnessTask) -> str:
    """A hash of everything the task reads: lm-eval's version, the YAML with every file it includes,
    the Python files its `!function`s live in, and its local data files."""
    import importlib.metadata

    digest = hashlib.sha256(importlib.metadata.version("lm_eval").encode())
    for path in read_files(task):
        digest.update(str(path.name).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def read_files(task: HarnessTask) -> list[Path]:
    """The files the task reads: its YAML, the files it includes, the Python files of its
    `!function`s, its local data files."""
    from lm_eval.tasks._yaml_loader import load_yaml

    todo, yamls, functions = [task.yaml_path], [], set()
    while todo:
        path = todo.pop()
        if path in yamls or not path.is_file():
            continue
        yamls.append(path)
        raw = load_yaml(path, resolve_func=False, recursive=False)
        includes = raw.get("include") or []
        todo += [path.parent / p for p in (includes if isinstance(includes, list) else [includes])]
        # An unresolved `!function module.name` reads as the path of module.py beside the YAML, plus .name.
        functions |= {Path(v.rsplit(".", 1)[0] + ".py") for v in _strings(raw) if v.startswith(str(path.parent))}
    return [*yamls, *sorted(p for p in functions if p.is_file()), *task.data_files()]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _not_cleaned(rows) -> Cleaned:
    # The harness's own process_docs prepares its documents; lorastudy keeps them as they are.
    out = Cleaned(rows=list(rows))
    out.loaded = len(out.rows)
    return out


def _not_scored(row: dict, output: Any, truncated: bool = False) -> dict:
    raise RuntimeError("an lm-eval task is scored by the harness's evaluator (evaluate/harness.py)")


def declaration(name: str, spec: str, root: Path) -> Task:
    """The lorastudy declaration of the lm-eval task `spec`, under the name the study gives it.
    Derived again only when a file it read has changed since (the report asks for a declaration
    many times, and a data file can be large)."""
    key = (name, spec, str(root))
    known = _DECLARED.get(key)
    if known is not None and known[0] == _stamps(known[1]):
        return known[2]
    task = locate(spec, root)
    files = read_files(task)
    declared = _declaration(name, task, fingerprint(task))
    _DECLARED[key] = (_stamps(files), files, declared)
    return declared


# Declarations by (name, spec, root): the stamps of the files each read, those files, the declaration.
_DECLARED: dict[tuple[str, str, str], tuple[list, list[Path], Task]] = {}


def _stamps(files: list[Path]) -> list[tuple[int, int] | None]:
    return [(st.st_mtime_ns, st.st_size) if (st := _stat(p)) else None for p in files]


def _stat(path: Path):
    try:
        return path.stat()
    except OSError:
        return None


@cache
def _declaration(name: str, task: HarnessTask, identity: str) -> Task:
    config = task.config
    generation = config.get("generation_kwargs") or {}
    until = generation.get("until") or []
    return Task(
        name=name,
        title=f"{config.get('task_alias') or task.task_name} (lm-eval)",
        version=1,
        kind=KINDS[config.get("output_type", "generate_until")],
        metrics=declared_metrics(task),
        hub=HubSource(
            str(config.get("dataset_path")),
            str(config.get("test_split") or config.get("validation_split")),
            config.get("dataset_name"),
        ),
        clean=_not_cleaned,
        prompt=lambda tokenizer, row: row["prompt"],
        score=_not_scored,
        question=lambda row: row["question"],
        overlap_keys=lambda row: (row["question"],),
        max_new_tokens=int(generation.get("max_gen_toks", HARNESS_MAX_GEN_TOKS)),
        stop_strings=tuple([until] if isinstance(until, str) else until),
        harness=task,
        study_data=False,
        fingerprint=identity,
    )
