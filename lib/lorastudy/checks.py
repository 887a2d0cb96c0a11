"""Checks of a validated configuration against the machine, before any model is loaded:
local model and data paths exist, the data holds as many items as the study asks for, and
the study's settings fit together. Each problem is one line naming the key or file."""

from __future__ import annotations

from .builtin_models import BUILTIN_MODELS, builtin_model
from .config import ConfigError, StudyConfig, is_local
from .data import HUB_EVAL_SIZES, LOCAL_NAMES, count_rows, local_file
from .io import StudyPaths
from .tasks import TASKS


def study_problems(cfg: StudyConfig) -> list[str]:
    problems = []
    name = cfg.model.name
    if name.startswith("builtin:"):
        problems += _builtin_problems(cfg)
    elif is_local(name):
        path = cfg.resolve(name)
        if not path.is_dir():
            problems.append(f"model.name: local model folder {path} does not exist")
        elif not (path / "config.json").is_file():
            problems.append(f"model.name: {path} has no config.json, so it is not a model folder")

    if cfg.data.source == "local" and cfg.data.local_dir is not None:
        directory = cfg.resolve(cfg.data.local_dir)
        if not directory.is_dir():
            problems.append(f"data.local_dir: folder {directory} does not exist")
        else:
            needed = {"openmath"} | {t.name for t in cfg.tasks}
            for dataset in sorted(needed):
                path = local_file(directory, dataset)
                if path is None:
                    problems.append(
                        f"data.local_dir: {directory} has no {LOCAL_NAMES[dataset]}.jsonl, .json or .parquet"
                    )
                    continue
                rows = count_rows(path)
                if dataset == "openmath":
                    want = cfg.data.train_samples + _n(cfg, "openmath", 500)
                    if rows < want:
                        problems.append(
                            f"data.train_samples: {path} has {rows} rows, fewer than the "
                            f"{want} asked for (training plus held-out openmath items)"
                        )
                elif _n(cfg, dataset, 0) > rows:
                    problems.append(f"tasks.{dataset}.n: asked for {_n(cfg, dataset, 0)} items, {path} has {rows} rows")
    if cfg.data.source == "hub":
        for dataset, size in HUB_EVAL_SIZES.items():
            if _n(cfg, dataset, 0) > size:
                problems.append(
                    f"tasks.{dataset}.n: asked for {_n(cfg, dataset, 0)} items, "
                    f"{TASKS[dataset].hub_id} {TASKS[dataset].hub_split} has {size}"
                )
    generative = [t.name for t in cfg.tasks if TASKS[t.name].kind == "generate"]
    if generative and cfg.eval.latency_task not in generative:
        problems.append(
            f"eval.latency_task: {cfg.eval.latency_task!r} is not one of the study's "
            f"generation tasks ({', '.join(generative)})"
        )
    return problems


def _builtin_problems(cfg: StudyConfig) -> list[str]:
    """An unknown built-in name, or one that cannot be built here (a missing wheel), named
    with the command that fixes it, before any step starts."""
    spec = builtin_model(cfg.model.name)
    if spec is None:
        known = ", ".join(BUILTIN_MODELS)
        return [f"model.name: unknown built-in model {cfg.model.name!r} (built-in models: {known})"]
    problems = []
    if not spec.is_built(StudyPaths(cfg.resolve("."), cfg.study).models):
        problems += [f"model.name: {spec.name} is not built yet and cannot be: {p}" for p in spec.missing()]
    if cfg.model.trust_remote_code:
        problems.append("model.trust_remote_code: the built-in models need no remote code; leave it false")
    return problems


def _n(cfg: StudyConfig, task: str, default: int) -> int:
    try:
        return cfg.task(task).n or default
    except KeyError:
        return default


def check_study(cfg: StudyConfig) -> None:
    problems = study_problems(cfg)
    if problems:
        raise ConfigError(problems)
