"""Checks of a validated configuration against the machine, before any model is loaded:
local model and data paths exist, the data holds as many items as the study asks for, and
the study's settings fit together. Each problem is one line naming the key or file."""

from __future__ import annotations

from .config import BUILTIN_MODEL, ConfigError, StudyConfig, is_local
from .data import HUB_EVAL_SIZES, LOCAL_NAMES, count_rows, local_file
from .tasks import TASKS


def study_problems(cfg: StudyConfig) -> list[str]:
    problems = []
    name = cfg.model.name
    if name != BUILTIN_MODEL and is_local(name):
        path = cfg.resolve(name)
        if not path.is_dir():
            problems.append(f"model.name: local model folder {path} does not exist")
        elif not (path / "config.json").is_file():
            problems.append(f"model.name: {path} has no config.json, so it is not a model folder")
    elif name.startswith("builtin:") and name != BUILTIN_MODEL:
        problems.append(f"model.name: unknown built-in model {name!r} (the only one is {BUILTIN_MODEL})")

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
    if cfg.model.trust_remote_code and name == BUILTIN_MODEL:
        problems.append("model.trust_remote_code: the built-in model needs no remote code; leave it false")
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
