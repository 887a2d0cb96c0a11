"""A study's steps (data, the quantization errors, each training, each evaluation, the report),
with what each consumes and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import methods, tasks
from ..study.paths import StudyPaths
from ..study.runs import runs_of, trained_run
from ..study.schema import StudyConfig, identity_settings
from ..util.files import sha256_file
from ..util.package_data import notebooks_dir
from .code_identity import CodeIdentity, code_identity, task_identity

# The package's own (an installed one) or its checkout's: the same files either way.
NOTEBOOKS_DIR = notebooks_dir()


REPORT = "04_report"


QUANTIZATION = "01_quantization"


# The parts of a task's declaration each kind of step runs: training uses the task's training
# prompt, not its scorer, so changing a scorer redoes evaluation and the report, not training.
TASK_FIELDS = {
    "01_data.ipynb": ("hub", "clean", "synthetic", "overlap_keys", "evaluable", "default_n", "train_example"),
    "01_quantization.ipynb": (),
    "02_train.ipynb": ("train_example",),
    "03_evaluate.ipynb": (
        "kind",
        "metrics",
        "prompt",
        "score",
        "question",
        "choices",
        "max_new_tokens",
        "stop_strings",
    ),
    "04_report.ipynb": ("title", "metrics"),
}


@dataclass
class Step:
    id: str
    notebook: str
    parameters: dict[str, Any]  # papermill parameters besides the study's own (method, seed)
    params: dict[str, Any]  # the resolved parameters its outputs depend on
    inputs: list[str]  # the steps whose outputs it reads
    task_code: dict[str, dict]  # the version of each task it uses, and a hash of the parts of it the step runs
    code: CodeIdentity
    outputs: list[Path] = field(default_factory=list)
    # Accelerators it runs on (one per training process, one for an evaluation, none for the
    # data and the report): what it asks a cluster for.
    devices: int = 0
    # A training's folder of checkpoints: the step is told its id and identity, so that it resumes
    # only a checkpoint of that identity; --force removes it.
    checkpoints: Path | None = None


def plan(cfg: StudyConfig, paths: StudyPaths) -> list[Step]:
    """The study's steps in order, with what each consumes and what it writes."""
    code: dict[str, CodeIdentity] = {}

    def step(id, notebook, params, inputs: list[str], used: list[str], outputs: list, devices: int = 0, **extra):
        if notebook not in code:
            code[notebook] = code_identity(NOTEBOOKS_DIR / notebook)
        fields = TASK_FIELDS[notebook]
        versions = {t: _task_code(cfg, t, fields) for t in sorted(set(used))}
        return Step(id, notebook, extra, params, inputs, versions, code[notebook], outputs, devices)

    c, studied, train_task = cfg.to_dict(), [t.name for t in cfg.tasks], cfg.data.train_task
    data_params = {"model": c["model"], "data": c["data"], "tasks": c["tasks"], "local_files": local_files(cfg)}
    data = step(
        "01_data",
        "01_data.ipynb",
        data_params,
        [],
        [train_task, *studied],
        [paths.data / "summary.json", paths.data / "train.jsonl", paths.data / "validation.jsonl"],
    )
    steps, trained = [data], {}
    if any(methods.get(m, cfg).quantize for m in cfg.methods):
        # Each linear layer's error and bytes in every format, for the report's "why" section.
        outputs = [paths.quantization / "layers.csv", paths.quantization / "summary.json"]
        steps.append(step(QUANTIZATION, "01_quantization.ipynb", {"model": c["model"]}, [data.id], [], outputs, 1))
    for run in runs_of(cfg):
        method = methods.get(run.method, cfg)
        if not method.trains:
            continue
        m = method.settings(cfg).to_dict()
        params = {**_method_params(cfg, run), "lora": m["lora"], "train": identity_settings(m["train"])}
        outputs = [paths.train_json(run.name), paths.loss_csv(run.name), paths.adapter(run.name)]
        processes = m["train"]["processes"]
        trained[run.name] = step(
            f"02_train-{run.name}", "02_train.ipynb", params, [data.id], [train_task], outputs, processes, **_run(run)
        )
        trained[run.name].checkpoints = paths.checkpoints(run.name)
        steps.append(trained[run.name])
    for run in runs_of(cfg):
        params = {**_method_params(cfg, run), "tasks": c["tasks"], "eval": c["eval"]}
        # Its own training, or (a cross-evaluation) the training whose adapter it runs.
        source = trained_run(cfg, run)
        inputs = [data.id] + ([trained[source.name].id] if source is not None else [])
        outputs = [paths.eval_json(run.name)] + [paths.predictions(run.name, t) for t in studied]
        steps.append(
            step(f"03_evaluate-{run.name}", "03_evaluate.ipynb", params, inputs, studied, outputs, 1, **_run(run))
        )
    results = [paths.results / f"{name}.csv" for name in ("metrics", "comparisons", "resources")]
    steps.append(step(REPORT, "04_report.ipynb", {"report": c["report"]}, [s.id for s in steps], studied, results))
    return steps


def _method_params(cfg: StudyConfig, run) -> dict[str, Any]:
    """What a run's outputs depend on of its method: the base it loads, as its declaration says."""
    method = methods.get(run.method, cfg)
    m = method.settings(cfg).to_dict()
    return {
        "model": m["model"],
        "method": run.method,
        "seed": run.seed,
        "quant": m["quant"] if method.quantize else None,
        "build": method.build(),
    }


def _task_code(cfg: StudyConfig, name: str, fields: tuple[str, ...]) -> dict:
    """A task's version and the code of it a kind of step runs: the parts of a built-in declaration
    it uses (task_identity), or for a task the params declare, the hash of what it reads outside
    the package (an lm-eval YAML, its includes and functions); its code inside is hashed as code."""
    task = tasks.get(name, cfg)
    return {"version": task.version, "code": task_identity(name, fields) or task.fingerprint}


def local_files(cfg: StudyConfig) -> dict[str, str]:
    """A hash of each local file the data step reads, so that editing one redoes it: the local data
    folder's files, data.train's file, and each lm-eval task's YAML (with what it includes and its
    functions) and data files. (Hub datasets are named by id; synthetic data by its generator, which
    is code.)"""
    from ..data.datasets import local_file
    from ..data.own import file_hash

    files = {}
    if cfg.data.source == "local" and cfg.data.local_dir is not None:
        directory = cfg.resolve(cfg.data.local_dir)
        for name in sorted({cfg.data.train_task} | {t.name for t in cfg.tasks}):
            task = tasks.get(name, cfg)
            read = task.study_data and not (name == cfg.data.train_task and cfg.data.train is not None)
            path = local_file(directory, task) if read else None
            if path is not None:
                files[name] = sha256_file(path)[:16]
    if file_hash(cfg) is not None:
        files["data.train"] = file_hash(cfg)
    for t in cfg.tasks:
        if t.lm_eval is not None:
            files[f"tasks.{t.name}.lm_eval"] = tasks.get(t.name, cfg).fingerprint
    return files


def _run(run) -> dict[str, Any]:
    return {"method": run.method, "seed": run.seed}
