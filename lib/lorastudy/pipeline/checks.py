"""Checks of a validated configuration against the machine, before any model is loaded:
local model and data paths exist, the data holds as many items as the study asks for, and
the study's settings fit together. Each problem is one line naming the key or file."""

from __future__ import annotations

from .. import methods, tasks
from ..data.datasets import count_rows, eval_size, local_file, own_data_problems
from ..models.builtin import BUILTIN_MODELS, builtin_model
from ..study.paths import StudyPaths
from ..study.schema import ConfigError, StudyConfig, is_local


def study_problems(cfg: StudyConfig) -> list[str]:
    problems = model_problems(cfg)
    if not problems:
        problems += size_problems(cfg)
    if cfg.data.source == "local" and cfg.data.local_dir is not None:
        problems += local_data_problems(cfg)
    problems += own_data_problems(cfg)
    if cfg.data.source == "hub":
        for t in cfg.tasks:
            task, n = tasks.get(t.name, cfg), eval_size(cfg, t.name)
            if task.hub.size is not None and n is not None and n > task.hub.size:
                problems.append(
                    f"tasks.{t.name}.n: asked for {n} items, {task.hub.id} {task.hub.split} has {task.hub.size}"
                )
    generative = [t.name for t in cfg.tasks if tasks.get(t.name, cfg).kind == "generate"]
    if generative and cfg.eval.latency_task not in generative:
        problems.append(
            f"eval.latency_task: {cfg.eval.latency_task!r} is not one of the study's "
            f"generation tasks ({', '.join(generative)})"
        )
    return problems


def model_problems(cfg: StudyConfig) -> list[str]:
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


def size_problems(cfg: StudyConfig) -> list[str]:
    """A method offered only for models up to a size (full fine-tuning), on a larger model. The
    size comes from the model's configuration (no weight is read); a model whose configuration
    is neither here nor in the cache is checked by the training step once it is loaded."""
    limited = [methods.get(m, cfg) for m in cfg.methods if methods.get(m, cfg).max_params is not None]
    if not limited:
        return []
    from ..models.source import model_folder
    from .estimate import parameters

    n = parameters(cfg, model_folder(cfg.model, StudyPaths(cfg.resolve("."), cfg.study).models, cfg.resolve))
    return [
        f"methods: {m.name} is offered for models up to {m.max_params:,} parameters; {cfg.model.name} has "
        f"about {n:,} (drop {m.name}, or use a smaller model)"
        for m in limited
        if n is not None and n > m.max_params
    ]


def local_data_problems(cfg: StudyConfig) -> list[str]:
    directory = cfg.resolve(cfg.data.local_dir)
    if not directory.is_dir():
        return [f"data.local_dir: folder {directory} does not exist"]
    problems = []
    for name in dict.fromkeys([cfg.data.train_task, *(t.name for t in cfg.tasks)]):
        task = tasks.get(name, cfg)
        if not task.study_data or (name == cfg.data.train_task and cfg.data.train is not None):
            continue  # its data is its own: data.train, an lm-eval task file
        path = local_file(directory, task)
        if path is None:
            problems.append(f"data.local_dir: {directory} has no {task.local_name}.jsonl, .json or .parquet")
            continue
        rows, n = count_rows(path), eval_size(cfg, name) or 0
        if name == cfg.data.train_task:
            if rows < cfg.data.train_samples + n:
                problems.append(
                    f"data.train_samples: {path} has {rows} rows, fewer than the "
                    f"{cfg.data.train_samples + n} asked for (training plus held-out {name} items)"
                )
        elif n > rows:
            problems.append(f"tasks.{name}.n: asked for {n} items, {path} has {rows} rows")
    return problems


def device_problems(cfg: StudyConfig, allow_cpu: bool) -> list[str]:
    """A hub model is a real study: on a machine without CUDA it would run for days, so it
    needs the user's explicit --allow-cpu."""
    hub = not cfg.model.name.startswith("builtin:") and not is_local(cfg.model.name)
    if not hub or allow_cpu:
        return []
    import torch

    if not torch.cuda.is_available():
        return [
            f"model.name: {cfg.model.name} is a hub model and this machine has no CUDA device; a study of it on "
            f"the CPU takes many hours (see the plan `lorastudy check` prints): pass --allow-cpu to run it anyway"
        ]
    return []


def check_study(cfg: StudyConfig) -> None:
    problems = study_problems(cfg)
    if problems:
        raise ConfigError(problems)
