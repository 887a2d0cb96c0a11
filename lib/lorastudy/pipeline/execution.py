"""Running one step: papermill executes its notebook in a fresh kernel, with the study's
parameters and its own; the step's record is written last."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..study.paths import StudyPaths
from ..util.files import atomic_write_json, atomic_write_text
from .kernels import StartedKernel, adopting
from .records import read_records
from .steps import NOTEBOOKS_DIR, Step


class StepFailed(RuntimeError):
    def __init__(self, step: str, message: str, notebook: Path):
        self.step, self.message, self.notebook = step, message, notebook
        super().__init__(f"step {step} failed:\n{message}\nexecuted notebook kept at {notebook}")

    def __reduce__(self):
        # Rebuilt from its fields, not its text, when a Ray worker sends it back to the driver.
        return StepFailed, (self.step, self.message, self.notebook)


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


def execute(
    step: Step,
    paths: StudyPaths,
    study: dict[str, Any],
    step_identity: str,
    consumed: dict,
    kernel: StartedKernel | None = None,
) -> float:
    """Run one notebook in a fresh kernel with the study's parameters (`study`) and the step's;
    keep the executed copy; write the step's record last. `kernel`: one started for this step
    (kernels.py), stopped with the notebook; without one papermill starts it."""
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
    parameters = {**study, **step.parameters}
    if step.checkpoints is not None:
        parameters.update(step=step.id, identity=step_identity)
    try:
        with _environment(device_environment(step, os.environ)):
            _execute_notebook(step, running, parameters, None if kernel is None else kernel.hand_over())
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
    timing = {"wall_s": wall_s, **notebook_timing(final), "kernel_ahead": kernel is not None and kernel.ahead}
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


def _execute_notebook(step: Step, output: Path, parameters: dict[str, Any], manager) -> None:
    import papermill as pm

    # A kernel started for the step is handed to nbclient as the kernel it starts.
    started = {} if manager is None else {"kernel_manager_class": adopting(manager)}
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
        **started,
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


def kernel_environment(step: Step) -> dict[str, str]:
    """The whole environment a step's kernel starts with: this process's, and its devices'."""
    return {**os.environ, **device_environment(step, os.environ)}


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
    """results/steps.csv: each step's time as its record holds it, and the rendering's; and
    whether its kernel was started ahead, while the step before it ran (kernels.py)."""
    records = read_records(paths)
    fields = ["kernel_start_s", "imports_s", "work_s", "kernel_stop_s", "wall_s"]
    lines = ["step,started,finished," + ",".join(fields) + ",kernel_ahead"]
    for step in step_ids:
        record = records.get(step, {})
        timing = record.get("timing") or {"wall_s": record.get("wall_s")}
        values = ["" if timing.get(f) is None else f"{timing[f]:.3f}" for f in fields]
        ahead = {True: "true", False: "false"}.get(timing.get("kernel_ahead"), "")  # blank: not recorded
        lines.append(",".join([step, record.get("started", ""), record.get("finished", ""), *values, ahead]))
    lines.append("render,,," + ",".join(["", "", "", "", f"{render_s:.3f}", ""]))
    path = paths.results / "steps.csv"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
