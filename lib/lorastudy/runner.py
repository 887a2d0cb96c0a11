"""Runs a study: papermill executes each notebook step in its own kernel, then nbconvert
renders the executed report without code cells. One run of a study at a time holds its
folder (lock.study_lock).

A study is a chain of steps: 01_data, 01_quantization (when a method quantizes its base),
02_train per trained run, 03_evaluate per run and 04_report; each step reads the outputs of
the steps named in its `inputs` (a cross-evaluation reads the training whose adapter it
runs). A step's identity is a hash of everything it consumed:
- its resolved parameters, those its outputs depend on, without paths of this checkout
  (and, for local data, a hash of each data file);
- its code: its notebook's cells and every definition of the package that the notebook
  reaches (code_identity.py derives these from the source);
- the version of each task it uses (tasks.Task.version);
- the run id of each step it reads, as that step's record holds it.

When a step finishes, its record (runs/<study>/steps/<step>.json) is written last, with its
identity, a new run id, the run ids it consumed and when it ran. A step is skipped when its
record holds its current identity and its outputs exist; otherwise it is redone, and the
log says why. Since a redone step gets a new run id, every step downstream of it gets a new
identity and is redone as well. So whatever moment a run, forced or not, is stopped at,
the next run redoes everything after that point, and the records always form one chain:
each step was built from the runs its inputs hold now. The report checks that chain before
it reads anything (`recorded_chain`) and lists it in its provenance.

One scheduler runs the graph (`Scheduler`): a step is decided (skipped or started) once every
step it reads has settled, and an executor runs the started ones (executors.py): the local
executor one at a time in this machine, in plan order; the Ray executor as Ray tasks, at the
same time where the graph allows and the cluster has the resources each step asks for.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import methods, tasks
from .code_identity import CodeIdentity, code_identity, task_identity
from .config import StudyConfig, load_config, params_hash
from .files import StudyPaths, atomic_write_json, atomic_write_text, read_json, sha256_file
from .lock import study_lock

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
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


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str, notebook: Path):
        self.step, self.message, self.notebook = step, message, notebook
        super().__init__(f"step {step} failed:\n{message}\nexecuted notebook kept at {notebook}")

    def __reduce__(self):
        # Rebuilt from its fields, not its text, when a Ray worker sends it back to the driver.
        return StepFailed, (self.step, self.message, self.notebook)


class InconsistentRuns(RuntimeError):
    """The recorded steps are not one chain: a report built from them would mix runs."""


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


def plan(cfg: StudyConfig, paths: StudyPaths) -> list[Step]:
    """The study's steps in order, with what each consumes and what it writes."""
    code: dict[str, CodeIdentity] = {}

    def step(id, notebook, params, inputs: list[str], used: list[str], outputs: list, devices: int = 0, **extra):
        if notebook not in code:
            code[notebook] = code_identity(NOTEBOOKS_DIR / notebook)
        fields = TASK_FIELDS[notebook]
        versions = {t: {"version": tasks.get(t).version, "code": task_identity(t, fields)} for t in sorted(set(used))}
        return Step(id, notebook, extra, params, inputs, versions, code[notebook], outputs, devices)

    c, studied, train_task = cfg.to_dict(), [t.name for t in cfg.tasks], cfg.data.train_task
    data_params = {"model": c["model"], "data": c["data"], "tasks": c["tasks"], "local_files": local_files(cfg)}
    data = step(
        "01_data",
        "01_data.ipynb",
        data_params,
        [],
        [train_task, *studied],
        [paths.data / "summary.json", paths.data / "train.jsonl"],
    )
    steps, trained = [data], {}
    if any(methods.get(m).quantize for m in cfg.methods):
        # Each linear layer's error and bytes in every format, for the report's "why" section.
        outputs = [paths.quantization / "layers.csv", paths.quantization / "summary.json"]
        steps.append(step(QUANTIZATION, "01_quantization.ipynb", {"model": c["model"]}, [data.id], [], outputs, 1))
    for run in cfg.runs():
        method = methods.get(run.method)
        if not method.trains:
            continue
        m = method.settings(cfg).to_dict()
        params = {**_method_params(cfg, run), "lora": m["lora"], "train": m["train"]}
        outputs = [paths.train_json(run.name), paths.loss_csv(run.name), paths.adapter(run.name)]
        processes = m["train"]["processes"]
        trained[run.name] = step(
            f"02_train-{run.name}", "02_train.ipynb", params, [data.id], [train_task], outputs, processes, **_run(run)
        )
        steps.append(trained[run.name])
    for run in cfg.runs():
        params = {**_method_params(cfg, run), "tasks": c["tasks"], "eval": c["eval"]}
        # Its own training, or (a cross-evaluation) the training whose adapter it runs.
        source = cfg.trained_run(run)
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
    method = methods.get(run.method)
    m = method.settings(cfg).to_dict()
    return {
        "model": m["model"],
        "method": run.method,
        "seed": run.seed,
        "quant": m["quant"] if method.quantize else None,
        "build": method.build(),
    }


def local_files(cfg: StudyConfig) -> dict[str, str]:
    """A hash of each local data file the data step reads, so that editing one redoes it.
    (Hub datasets are named by id; synthetic data by its generator, which is code.)"""
    from .data import local_file

    if cfg.data.source != "local" or cfg.data.local_dir is None:
        return {}
    directory = cfg.resolve(cfg.data.local_dir)
    names = sorted({cfg.data.train_task} | {t.name for t in cfg.tasks})
    files = {name: local_file(directory, tasks.get(name)) for name in names}
    return {name: sha256_file(path)[:16] for name, path in files.items() if path is not None}


def _run(run) -> dict[str, Any]:
    return {"method": run.method, "seed": run.seed}


# ------------------------------------------------------------------------- identity and records


def read_records(paths: StudyPaths) -> dict[str, dict]:
    """Each finished step's record, by step id (an unreadable record counts as none)."""
    records = {}
    for path in sorted(paths.steps.glob("*.json")) if paths.steps.is_dir() else []:
        try:
            record = read_json(path)
        except ValueError:
            continue
        if isinstance(record, dict) and {"identity", "run"} <= set(record):
            records[path.stem] = record
    return records


def identity(step: Step, records: dict[str, dict]) -> tuple[str | None, dict[str, str]]:
    """The step's identity given the recorded runs of its inputs, and those run ids; no
    identity while an input has no record (it has to run first)."""
    consumed = {}
    for name in step.inputs:
        if name not in records:
            return None, {}
        consumed[name] = records[name]["run"]
    whole = {
        "step": step.id,
        "params": step.params,
        "code": step.code.hash,
        "tasks": step.task_code,
        "inputs": consumed,
    }
    return params_hash(whole), consumed


def is_done(step: Step, record: dict | None, step_identity: str | None) -> bool:
    return (
        record is not None
        and step_identity is not None
        and record.get("identity") == step_identity
        and all(p.exists() for p in step.outputs)
    )


def why_not_done(step: Step, records: dict[str, dict]) -> str:
    """What differs between a step's record and what it would consume now, in words."""
    record = records.get(step.id)
    if record is None:
        return "no record of a finished run"
    unrecorded = [name for name in step.inputs if name not in records]
    if unrecorded:
        return f"no record of {_some(unrecorded)}, which it was built from"
    consumed = {name: records[name]["run"] for name in step.inputs}
    missing = [p.name for p in step.outputs if not p.exists()]
    if missing:
        return "outputs missing: " + ", ".join(missing)
    reasons = []
    changed = _changed(_as_json(record.get("params")), _as_json(step.params))
    if changed:
        reasons.append("parameters changed: " + _some(changed))
    if record.get("code", {}).get("hash") != step.code.hash:
        reasons.append("code changed: " + _some(_changed(record.get("code", {}).get("parts"), step.code.parts)))
    if record.get("tasks") != step.task_code:
        reasons.append("task declarations changed: " + _some(_changed(record.get("tasks"), step.task_code)))
    redone = [name for name, run in consumed.items() if record.get("inputs", {}).get(name) != run]
    if redone:
        reasons.append(_some(redone) + (" was" if len(redone) == 1 else " were") + " redone since")
    return "; ".join(reasons) or "its record was written by another version of lorastudy"


def _as_json(obj: Any) -> Any:
    """As a record holds it once written: tuples are lists."""
    return json.loads(json.dumps(obj, default=str))


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in _changed(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [prefix.rstrip(".") or "all"] if old != new else []


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def recorded_chain(cfg: StudyConfig, paths: StudyPaths) -> list[dict]:
    """The runs a report of this study is built from, one row per step (the report last,
    with its identity), after checking that every step before the report is done for what
    it would consume now. Raises InconsistentRuns naming each step that is not."""
    steps = plan(cfg, paths)
    records = read_records(paths)
    rows, problems = [], []
    for step in steps:
        step_identity, consumed = identity(step, records)
        record = records.get(step.id)
        if step.id != REPORT and not is_done(step, record, step_identity):
            problems.append(f"{step.id}: {why_not_done(step, records)}")
            continue
        times = {key: record.get(key) if step.id != REPORT else None for key in ("started", "finished", "host")}
        run = record["run"] if step.id != REPORT else None
        timing = record.get("timing") if step.id != REPORT else None
        rows.append(
            {"step": step.id, "identity": step_identity, "run": run, "inputs": consumed, **times, "timing": timing}
        )
    if problems:
        raise InconsistentRuns(
            "the recorded steps are not one consistent run, so no report is built from them "
            "(run `lorastudy run` to redo what is out of date):\n" + "\n".join(problems)
        )
    return rows


def use_this_interpreter(kernels: Path) -> None:
    """Make the kernel papermill starts (python3) this interpreter, whatever kernels the user
    has installed elsewhere: JUPYTER_PATH is searched before the user's and system's folders.
    `kernels` is the folder the kernel's spec is written in."""
    spec = kernels / "kernels" / "python3" / "kernel.json"
    # Written whole: runs of other studies may be writing the same file at the same time.
    atomic_write_text(
        spec,
        json.dumps(
            {
                "argv": [
                    sys.executable,
                    "-m",
                    "ipykernel_launcher",
                    "-f",
                    "{connection_file}",
                    # not its warning about local TCP without encryption
                    "--IPKernelApp.log_level=ERROR",
                ],
                "display_name": "Python 3 (lorastudy)",
                "language": "python",
            }
        ),
    )
    searched = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
    if str(kernels) not in searched:
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernels), *searched]))


def execute(step: Step, paths: StudyPaths, study: dict[str, Any], step_identity: str, consumed: dict) -> float:
    """Run one notebook in a fresh kernel with the study's parameters (`study`) and the step's;
    keep the executed copy; write the step's record last."""
    from papermill.exceptions import PapermillExecutionError

    record_path = paths.steps / f"{step.id}.json"
    record_path.unlink(missing_ok=True)
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    final = paths.notebooks / f"{step.id}.ipynb"
    running = paths.notebooks / f".{step.id}.running.ipynb"
    failed = paths.notebooks / f"{step.id}.failed.ipynb"
    failed.unlink(missing_ok=True)
    started = _now()
    start = time.perf_counter()
    try:
        with _environment(device_environment(step, os.environ)):
            _execute_notebook(step, running, {**study, **step.parameters})
    except PapermillExecutionError as exc:
        os.replace(running, failed)
        message = f"{exc.ename}: {exc.evalue}"
        raise StepFailed(step.id, message, failed) from None
    except BaseException:
        if running.exists():
            os.replace(running, failed)
        raise
    os.replace(running, final)
    wall_s = time.perf_counter() - start
    timing = {"wall_s": wall_s, **notebook_timing(final)}
    record = {
        "step": step.id,
        "identity": step_identity,
        "run": uuid.uuid4().hex[:16],  # new for every run of the step, so what consumed the last one is redone
        "inputs": consumed,
        "params": step.params,
        "code": {"hash": step.code.hash, "parts": step.code.parts},
        "tasks": step.task_code,
        "started": started,
        "finished": _now(),
        "wall_s": wall_s,
        "timing": timing,
        "host": socket.gethostname(),  # which node ran it, when an executor spreads steps over a cluster
    }
    atomic_write_json(record_path, record)
    return wall_s


def _execute_notebook(step: Step, output: Path, parameters: dict[str, Any]) -> None:
    import papermill as pm

    pm.execute_notebook(
        str(NOTEBOOKS_DIR / step.notebook),
        str(output),
        parameters=parameters,
        kernel_name="python3",
        language="python",
        cwd=str(NOTEBOOKS_DIR),
        progress_bar=False,
        stdout_file=sys.stdout,
        # The outputs are in the notebook once its last cell ran: stop the kernel then,
        # rather than wait seconds for it to wind down its libraries.
        shutdown_kernel="immediate",
    )


def device_environment(step: Step, environ: Mapping[str, str]) -> dict[str, str]:
    """What a step's kernel is given of the GPUs: a step on one device (an evaluation, the
    quantization errors, a one-process training) sees exactly one, the first it would see, so
    that transformers' Trainer does not spread a one-process training over every GPU with
    DataParallel (which it does for a 16-bit model but not a 4-bit one: LoRA and QLoRA would
    run on different hardware with different global batches). Other steps see what this
    process sees (a training over several processes takes one GPU each)."""
    if step.devices != 1:
        return {}
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    return {"CUDA_VISIBLE_DEVICES": "0" if visible is None else visible.split(",")[0].strip()}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for a kernel this process starts (which inherits them), then restore them."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def notebook_timing(path: Path) -> dict[str, float]:
    """Where an executed notebook's time went, from papermill's records: starting the kernel
    (until its first cell), the first code cell after the parameters (imports and setup), the
    cells after it (the step's work), and stopping the kernel."""
    nb = json.loads(path.read_text())
    cells = [
        c for c in nb["cells"] if c["cell_type"] == "code" and c["metadata"].get("papermill", {}).get("start_time")
    ]
    tags = [set(c["metadata"].get("tags", [])) for c in cells]
    body = [c for c, t in zip(cells, tags) if not t & {"parameters", "injected-parameters"}]
    meta = nb["metadata"]["papermill"]

    def at(stamp: str) -> float:
        return datetime.fromisoformat(stamp).timestamp()

    first, last = cells[0]["metadata"]["papermill"], cells[-1]["metadata"]["papermill"]
    return {
        "kernel_start_s": at(first["start_time"]) - at(meta["start_time"]),
        "imports_s": body[0]["metadata"]["papermill"]["duration"] if body else 0.0,
        "work_s": sum(c["metadata"]["papermill"]["duration"] for c in body[1:]),
        "kernel_stop_s": at(meta["end_time"]) - at(last["end_time"]),
    }


def write_step_times(paths: StudyPaths, step_ids: list[str], render_s: float) -> Path:
    """results/steps.csv: each step's time as its record holds it, and the rendering's."""
    records = read_records(paths)
    fields = ["kernel_start_s", "imports_s", "work_s", "kernel_stop_s", "wall_s"]
    lines = ["step,started,finished," + ",".join(fields)]
    for step in step_ids:
        record = records.get(step, {})
        timing = record.get("timing") or {"wall_s": record.get("wall_s")}
        values = ["" if timing.get(f) is None else f"{timing[f]:.3f}" for f in fields]
        lines.append(",".join([step, record.get("started", ""), record.get("finished", ""), *values]))
    lines.append("render,,," + ",".join(["", "", "", "", f"{render_s:.3f}"]))
    path = paths.results / "steps.csv"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def nbconvert_templates() -> list[str]:
    """nbconvert's own templates (lab and markdown, which the report's extend), wherever pip put
    them: under a prefix's share/jupyter, which Jupyter searches, or after `pip install --target
    DIR` under DIR/share/jupyter, which it does not."""
    import nbconvert

    package = Path(nbconvert.__file__).resolve().parent
    # DIR/nbconvert (a --target install); PREFIX/lib/pythonX.Y/site-packages/nbconvert (a prefix)
    installs = [package.parent, *package.parents[3:4]]
    folders = [folder / "share" / "jupyter" / "nbconvert" / "templates" for folder in installs]
    return [str(folder) for folder in folders if folder.is_dir()]


def render(paths: StudyPaths, log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """The executed report notebook, without code cells, as HTML and Markdown."""
    import nbformat
    from nbconvert import HTMLExporter, MarkdownExporter

    notebook = nbformat.read(paths.notebooks / "04_report.ipynb", as_version=4)
    own = nbconvert_templates()
    options = dict(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        extra_template_basedirs=[str(TEMPLATES_DIR), *own],
        extra_template_paths=own,
    )
    # A template without the CDN scripts (require.js, MathJax): the page needs nothing else.
    html, _ = HTMLExporter(template_name="offline", **options).from_notebook_node(notebook)
    stem = paths.study
    markdown, resources = MarkdownExporter(template_name="offline_md", **options).from_notebook_node(
        notebook, resources={"output_files_dir": f"{stem}_files"}
    )
    paths.rendered.mkdir(parents=True, exist_ok=True)
    for name, data in resources.get("outputs", {}).items():
        target = paths.rendered / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    html_path, md_path = paths.rendered / f"{stem}.html", paths.rendered / f"{stem}.md"
    atomic_write_text(html_path, html)
    atomic_write_text(md_path, markdown)
    return html_path, md_path


class Scheduler:
    """Runs the plan on an executor. A step is decided once every step it reads has settled
    (skipped, or finished in this run): skipped while its record holds its current identity
    and its outputs exist, otherwise started. Steps are decided in plan order, so the local
    executor (one step at a time) runs exactly the plan's order. After a failure nothing new
    starts; the steps already running finish and keep their records, and the first failure is
    raised."""

    def __init__(self, steps: list[Step], paths: StudyPaths, executor, study: dict, force: bool, log):
        self.paths, self.executor, self.study, self.force, self.log = paths, executor, study, force, log
        self.number = {step.id: n for n, step in enumerate(steps, 1)}
        self.total = len(steps)
        self.waiting = list(steps)
        self.settled: set[str] = set()
        self.running: dict[Any, Step] = {}
        self.failures: list[StepFailed] = []

    def run(self) -> None:
        try:
            while True:
                self._start_ready()
                if not self.running:
                    break
                self._collect()
        except BaseException:
            self.executor.stop(list(self.running))
            raise
        if self.failures:
            raise self.failures[0]
        if self.waiting:  # cannot happen with a plan whose inputs come first; a guard against a reordered one
            raise InconsistentRuns(f"{self.waiting[0].id}: an input of it never ran; its inputs run first")

    def _prefix(self, step: Step) -> str:
        return f"[{self.number[step.id]}/{self.total}] {step.id}"

    def _start_ready(self) -> None:
        while not self.failures and len(self.running) < self.executor.slots:
            step = next((s for s in self.waiting if set(s.inputs) <= self.settled), None)
            if step is None:
                return
            self.waiting.remove(step)
            records = read_records(self.paths)
            step_identity, consumed = identity(step, records)
            if step_identity is None:  # its inputs have settled, so their records exist: a guard
                raise InconsistentRuns(f"{step.id}: an input of it has no record; its inputs run first")
            if not self.force and is_done(step, records.get(step.id), step_identity):
                self.log(f"{self._prefix(step)}: done already (identity {step_identity[:8]}), skipped")
                self.settled.add(step.id)
                continue
            reason = "--force" if self.force else why_not_done(step, records)
            self.log(f"{self._prefix(step)}: running {step.notebook} ({reason}){self.executor.where(step)}")
            self.running[self.executor.start(step, self.study, step_identity, consumed)] = step

    def _collect(self) -> None:
        handle, outcome = self.executor.next_finished(list(self.running))
        step = self.running.pop(handle)
        if outcome.error is not None:
            self.failures.append(outcome.error)
            if self.running:
                others = ", ".join(s.id for s in self.running.values())
                self.log(f"{self._prefix(step)}: failed; waiting for the steps still running ({others})")
            return
        self.settled.add(step.id)
        self.log(f"{self._prefix(step)}: finished in {outcome.wall_s:.1f} s")


def run_study(
    params_file: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    root: str | Path = ".",
    force: bool = False,
    executor: str = "local",
    address: str | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """Validate, take the study's lock, run every step that is not done for what it would
    consume now (on the `executor`: "local", or "ray" on the Ray cluster at `address`, a local
    instance without one), render the report."""
    from .checks import check_study
    from .executors import check_executor, open_executor

    params_file = Path(params_file).resolve()
    root = Path(root).resolve()
    overrides = dict(overrides or {})
    cfg = load_config(params_file, overrides, root=root)
    check_study(cfg)
    check_executor(executor, address)
    paths = StudyPaths(root, cfg.study)
    command = f"lorastudy run {params_file}" + "".join(f" -p {k}={v}" for k, v in overrides.items())
    with study_lock(paths.run_dir, cfg.study, command + (" --force" if force else ""), log):
        steps = plan(cfg, paths)
        use_this_interpreter(paths.root / "runs" / ".jupyter")
        study = {"params_file": str(params_file), "overrides": overrides, "root": str(paths.root)}
        total_start = time.perf_counter()
        with open_executor(executor, paths, steps, address, log) as running_on:
            Scheduler(steps, paths, running_on, study, force, log).run()
        render_start = time.perf_counter()
        html, md = render(paths, log)
        write_step_times(paths, [s.id for s in steps], time.perf_counter() - render_start)
    log(f"study {cfg.study} done in {time.perf_counter() - total_start:.1f} s: {html} and {md}")
    return html, md
