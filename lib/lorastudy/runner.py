"""Runs a study: papermill executes each notebook step in its own kernel, in order, then
nbconvert renders the executed report without code cells.

A step whose outputs exist for the same resolved parameters (a hash of what the step depends
on, stored beside its outputs) is skipped; `force` redoes every step. A step's marker is
removed before it runs and written after its outputs are complete, so an interrupted step is
redone on the next run.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__, methods
from .config import StudyConfig, load_config, params_hash
from .files import StudyPaths, atomic_write_json, read_json

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str, notebook: Path):
        self.step, self.notebook = step, notebook
        super().__init__(f"step {step} failed:\n{message}\nexecuted notebook kept at {notebook}")


@dataclass
class Step:
    id: str
    notebook: str
    parameters: dict[str, Any]
    depends: dict[str, Any]  # everything the outputs depend on; hashed into the marker
    outputs: list[Path] = field(default_factory=list)

    @property
    def hash(self) -> str:
        return params_hash(self.depends)


def plan(cfg: StudyConfig, paths: StudyPaths, params_file: Path, overrides: dict[str, Any]) -> list[Step]:
    """The study's steps in order, with what each depends on and what it writes."""
    common = {"params_file": str(params_file), "overrides": overrides, "root": str(paths.root)}
    c = cfg.to_dict()
    data_dep = {"version": __version__, "model": c["model"]["name"], "data": c["data"], "tasks": c["tasks"]}
    steps = [
        Step("01_data", "01_data.ipynb", common, data_dep, [paths.data / "summary.json", paths.data / "train.jsonl"])
    ]
    train_hash: dict[str, str] = {}
    for run in cfg.runs():
        if not methods.get(run.method).trains:
            continue
        mc = methods.get(run.method).settings(cfg).to_dict()
        dep = {
            "data": steps[0].hash,
            "model": mc["model"],
            "lora": mc["lora"],
            "train": mc["train"],
            "quant": mc["quant"] if methods.get(run.method).quantize else None,
            "method": run.method,
            "seed": run.seed,
        }
        step = Step(
            f"02_train-{run.name}",
            "02_train.ipynb",
            {**common, "method": run.method, "seed": run.seed},
            dep,
            [paths.train_json(run.name), paths.loss_csv(run.name), paths.adapter(run.name)],
        )
        train_hash[run.name] = step.hash
        steps.append(step)
    eval_hashes = []
    for run in cfg.runs():
        dep = {
            "data": steps[0].hash,
            "train": train_hash.get(run.name),
            "model": methods.get(run.method).settings(cfg).to_dict()["model"],
            "quant": methods.get(run.method).settings(cfg).to_dict()["quant"]
            if methods.get(run.method).quantize
            else None,
            "tasks": c["tasks"],
            "eval": c["eval"],
            "method": run.method,
            "seed": run.seed,
        }
        step = Step(
            f"03_evaluate-{run.name}",
            "03_evaluate.ipynb",
            {**common, "method": run.method, "seed": run.seed},
            dep,
            [paths.eval_json(run.name)] + [paths.predictions(run.name, t.name) for t in cfg.tasks],
        )
        eval_hashes.append(step.hash)
        steps.append(step)
    # The report is cheap to redo, so a change to its notebook or to the package's code redoes it.
    code = [NOTEBOOKS_DIR / "04_report.ipynb", *sorted(Path(__file__).parent.glob("*.py"))]
    report_dep = {
        "version": __version__,
        "runs": eval_hashes,
        "train": sorted(train_hash.values()),
        "report": c["report"],
        "code": [_file_hash(p) for p in code],
    }
    steps.append(
        Step(
            "04_report",
            "04_report.ipynb",
            common,
            report_dep,
            [paths.results / "metrics.csv", paths.results / "comparisons.csv", paths.results / "resources.csv"],
        )
    )
    return steps


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else ""


def is_done(step: Step, paths: StudyPaths) -> bool:
    marker = paths.steps / f"{step.id}.json"
    if not marker.is_file() or not all(p.exists() for p in step.outputs):
        return False
    try:
        return read_json(marker).get("hash") == step.hash
    except ValueError:
        return False


def use_this_interpreter(paths: StudyPaths) -> None:
    """Make the kernel papermill starts (python3) this interpreter, whatever kernels the user
    has installed elsewhere: JUPYTER_PATH is searched before the user's and system's folders."""
    import json

    kernels = paths.root / "runs" / ".jupyter"
    spec = kernels / "kernels" / "python3" / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(
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
        )
    )
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernels), os.environ.get("JUPYTER_PATH")]))


def execute(step: Step, paths: StudyPaths) -> float:
    """Run one notebook in a fresh kernel; keep the executed copy; write the marker last."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    marker = paths.steps / f"{step.id}.json"
    marker.unlink(missing_ok=True)
    paths.notebooks.mkdir(parents=True, exist_ok=True)
    final = paths.notebooks / f"{step.id}.ipynb"
    running = paths.notebooks / f".{step.id}.running.ipynb"
    failed = paths.notebooks / f"{step.id}.failed.ipynb"
    failed.unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(NOTEBOOKS_DIR / step.notebook),
            str(running),
            parameters=step.parameters,
            kernel_name="python3",
            language="python",
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=False,
            stdout_file=sys.stdout,
        )
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
    atomic_write_json(
        marker,
        {
            "hash": step.hash,
            "depends": step.depends,
            "wall_s": wall_s,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    return wall_s


def render(paths: StudyPaths, log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """The executed report notebook, without code cells, as HTML and Markdown."""
    import nbformat
    from nbconvert import HTMLExporter, MarkdownExporter

    from .files import atomic_write_text

    notebook = nbformat.read(paths.notebooks / "04_report.ipynb", as_version=4)
    options = dict(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    # A template without the CDN scripts (require.js, MathJax): the page needs nothing else.
    html, _ = HTMLExporter(
        extra_template_basedirs=[str(TEMPLATES_DIR)], template_name="offline", **options
    ).from_notebook_node(notebook)
    stem = paths.study
    markdown, resources = MarkdownExporter(
        extra_template_basedirs=[str(TEMPLATES_DIR)], template_name="offline_md", **options
    ).from_notebook_node(notebook, resources={"output_files_dir": f"{stem}_files"})
    paths.rendered.mkdir(parents=True, exist_ok=True)
    for name, data in resources.get("outputs", {}).items():
        target = paths.rendered / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    html_path, md_path = paths.rendered / f"{stem}.html", paths.rendered / f"{stem}.md"
    atomic_write_text(html_path, html)
    atomic_write_text(md_path, markdown)
    return html_path, md_path


def run_study(
    params_file: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    root: str | Path = ".",
    force: bool = False,
    log: Callable[[str], None] = print,
) -> tuple[Path, Path]:
    """Validate, run every step that is not already done, render the report."""
    from .checks import check_study

    params_file = Path(params_file).resolve()
    root = Path(root).resolve()
    overrides = dict(overrides or {})
    cfg = load_config(params_file, overrides, root=root)
    check_study(cfg)
    paths = StudyPaths(root, cfg.study)
    steps = plan(cfg, paths, params_file, overrides)
    use_this_interpreter(paths)
    total_start = time.perf_counter()
    for number, step in enumerate(steps, 1):
        prefix = f"[{number}/{len(steps)}] {step.id}"
        if not force and is_done(step, paths):
            log(f"{prefix}: done already for these parameters, skipped")
            continue
        log(f"{prefix}: running {step.notebook}")
        wall_s = execute(step, paths)
        log(f"{prefix}: finished in {wall_s:.1f} s")
    html, md = render(paths, log)
    log(f"study {cfg.study} done in {time.perf_counter() - total_start:.1f} s: {html} and {md}")
    return html, md
