"""Where a study's steps run. The scheduler (scheduler.Scheduler) decides which steps run and
when each may start; an executor runs them.

- `local` (the default): in this process's machine, one step at a time, in the plan's order.
- `ray`: each step is a Ray task on the cluster at `--address` (a local Ray instance without
  one), so steps that do not read each other's outputs run at the same time. A task asks for
  what its step uses: a CPU per process it runs, and on a cluster with GPUs a GPU per
  accelerator (a training's `train.processes`, an evaluation's one). It still executes the
  step's notebook with papermill in a fresh kernel and writes the step's record last, exactly
  as the local executor does.

What a task sees of the machine is what it asked for: Ray sets CUDA_VISIBLE_DEVICES to the
GPUs it assigned a task that asks for some (every step that computes: trainings, evaluations
and the quantization errors; the data step and the report ask for none) and OMP_NUM_THREADS
to its CPUs (checked with Ray 2.60), and the step's kernel inherits both, so a step on a
cluster without GPUs computes with one thread per CPU it asked for.

A Ray task reads and writes only the study's folder (`--root`): every node must see it at
the same path (a shared file system) and have lorastudy's dependencies installed, but not
lorastudy itself: the driver ships the package with the job (Ray's runtime_env `py_modules`), as
a wheel installs it, with its notebooks inside, so each worker and the kernel it starts import the
code whose identity the driver computed, wherever the node's checkout is, or without one. (The
folder, not the wheel: Ray installs a wheel in py_modules with its dependencies, torch among
them.) The driver
(`lorastudy run`) holds the study's lock and decides skips from the records, as it does
locally, so resume, `--force` and the failure report are the same with either executor.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..study.paths import StudyPaths
from ..study.schema import ConfigError
from ..util.package_data import installable_copy
from .execution import StepFailed, execute, kernel_environment, use_this_interpreter
from .kernels import Kernels, gpus_visible
from .steps import Step

EXECUTORS = ("local", "ray")


# Steps hand the driver a few numbers; Ray's default store (30% of memory) would reserve far more.
OBJECT_STORE_BYTES = 128 * 1024 * 1024


CLUSTER_EXTRA = "pip install -e '.[cluster]' (or make install EXTRAS=cluster)"


@dataclass
class Outcome:
    """What running a step came to: its wall time, or the failure that stopped it."""

    wall_s: float | None = None
    error: StepFailed | None = None


def check_executor(name: str, address: str | None) -> None:
    """Bad choices stop the run before anything starts (ConfigError)."""
    if name not in EXECUTORS:
        raise ConfigError([f"--executor: {name!r} is not an executor (expected one of {', '.join(EXECUTORS)})"])
    if address and name != "ray":
        raise ConfigError(["--address: names a Ray cluster, so it needs --executor ray"])
    if name == "ray":
        try:
            import_ray()
        except ImportError:
            raise ConfigError([f"--executor ray: Ray is not installed; {CLUSTER_EXTRA}"]) from None


def import_ray():
    """Ray, its log set up for a study's: every line of every step (not "[repeated 2x across
    cluster]" for two trainings' alike lines), without colour codes where it goes to a file.
    Ray reads these when it is first imported."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if not sys.stdout.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    import ray

    return ray


@contextmanager
def open_executor(
    name: str, paths: StudyPaths, steps: list[Step], address: str | None, log: Callable[[str], None]
) -> Iterator[Any]:
    check_executor(name, address)
    if name == "local":
        local = LocalExecutor(paths, steps)
        try:
            yield local
        finally:
            local.close()
        return
    executor = RayExecutor(paths, address, log)
    try:
        executor.check_fits(steps)
        yield executor
    finally:
        executor.close()


class LocalExecutor:
    """Runs a step as soon as it is started, in this process's machine: one at a time, each in a
    kernel it starts with the step's imports; where no GPU is visible, while that kernel is still
    importing, it starts the plan's next step's kernel too (kernels.py)."""

    slots = 1

    def __init__(self, paths: StudyPaths, steps: list[Step]):
        self.paths = paths
        self.finished: dict[str, Outcome] = {}
        self.following = {step.id: after for step, after in zip(steps, steps[1:])}
        self.kernels = Kernels()
        self.may_start_ahead = not gpus_visible()  # a kernel beside a GPU step could add to its memory peak

    def where(self, step: Step) -> str:
        return ""

    def start(self, step: Step, study: dict, step_identity: str, consumed: dict) -> str:
        kernel, importing = self.kernels.for_step(step, kernel_environment(step))
        following = self.following.get(step.id)
        if self.may_start_ahead and importing and following is not None:
            self.kernels.start_ahead(following, kernel_environment(following))
        try:
            wall_s = execute(step, self.paths, study, step_identity, consumed, kernel=kernel)
            self.finished[step.id] = Outcome(wall_s=wall_s)
        except StepFailed as exc:
            self.finished[step.id] = Outcome(error=exc)
        finally:
            kernel.stop_if_running()
        return step.id

    def next_finished(self, handles: list[str]) -> tuple[str, Outcome]:
        return handles[0], self.finished.pop(handles[0])

    def stop(self, handles: list[str]) -> None:
        """No step runs in the background: an interrupted step was interrupted where it ran."""

    def close(self) -> None:
        self.kernels.close()


def run_step(step: Step, paths: StudyPaths, study: dict, step_identity: str, consumed: dict) -> Outcome:
    """One step, in a Ray worker: its kernel is this worker's interpreter, whose path may differ
    from node to node, so its spec is written where only this node reads it."""
    interpreter = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    kernels = Path(tempfile.gettempdir()) / f"lorastudy-kernels-{os.getuid()}-{interpreter}"
    use_this_interpreter(kernels)
    try:
        return Outcome(wall_s=execute(step, paths, study, step_identity, consumed))
    except StepFailed as exc:
        return Outcome(error=exc)


class RayExecutor:
    """Each step a Ray task. Every started step is handed to Ray at once: Ray starts it when a
    node has the resources it asks for, so steps run at the same time as far as the cluster allows."""

    slots = math.inf

    def __init__(self, paths: StudyPaths, address: str | None, log: Callable[[str], None]):
        ray = import_ray()
        self.ray, self.paths, self.log = ray, paths, log
        self.owns = not ray.is_initialized()
        self.local = self.owns and not address  # an instance this run started, which no node will join
        self.staging = Path(tempfile.mkdtemp(prefix="lorastudy-ship-")) if self.owns else None
        try:
            if self.owns:
                self._init(address)
        except BaseException:
            self._remove_staging()
            raise
        self.has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        self.task = ray.remote(run_step)
        self.steps: dict[Any, Step] = {}
        where = f"the cluster at {address}" if address else "a local instance"
        total = ray.cluster_resources()
        log(f"Ray {ray.__version__}: {where}, {total.get('CPU', 0):g} CPUs and {total.get('GPU', 0):g} GPUs")
        if self.owns:
            log(f"Ray: the steps run lorastudy {__version__} as shipped with the job, its notebooks inside")
        else:
            log("Ray: started by the calling program, whose job's runtime_env decides which lorastudy the steps run")

    def _init(self, address: str | None) -> None:
        # Ray uploads a folder only for a whole job, at ray.init: the package goes with the job this run starts.
        shipped = {"py_modules": [str(installable_copy(self.staging))], "excludes": ["__pycache__", "*.pyc"]}
        if address:
            self.ray.init(address=address, runtime_env=shipped)
            return
        # A busy machine can take more than Ray's default 10 s to start the local node's raylet.
        os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
        self.ray.init(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, runtime_env=shipped)

    def _remove_staging(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def resources(self, step: Step) -> dict[str, float]:
        """A CPU per process (each feeds its GPU, or computes on a cluster without GPUs); on a
        cluster with GPUs, a GPU per accelerator the step runs on."""
        return {"num_cpus": max(1, step.devices), "num_gpus": step.devices if self.has_gpus else 0}

    def where(self, step: Step) -> str:
        need = self.resources(step)
        return f" as a Ray task ({need['num_cpus']:g} CPU, {need['num_gpus']:g} GPU)"

    def start(self, step: Step, study: dict, step_identity: str, consumed: dict) -> Any:
        # No retry on a lost worker: the step would rerun unannounced; a rerun of the study resumes instead.
        options = dict(name=step.id, max_retries=0, **self.resources(step))
        ref = self.task.options(**options).remote(step, self.paths, study, step_identity, consumed)
        self.steps[ref] = step
        return ref

    def check_fits(self, steps: list[Step]) -> None:
        """A step that no node can hold would wait forever: on a local instance that is an error,
        before any step starts; on a cluster a warning, since an autoscaler may add such a node."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node.get("Alive")]
        problems = []
        for step in steps:
            need = self.resources(step)
            if not any(n.get("CPU", 0) >= need["num_cpus"] and n.get("GPU", 0) >= need["num_gpus"] for n in nodes):
                problems.append(
                    f"{step.id} asks for {need['num_cpus']:g} CPUs and {need['num_gpus']:g} GPUs, which no node of "
                    "the Ray cluster has (lower train.processes, or run it where a node has them)"
                )
        if problems and self.local:
            raise ConfigError(problems)
        for problem in problems:
            self.log(f"warning: {problem}; Ray waits until such a node joins (an autoscaler may add one)")

    def next_finished(self, handles: list[Any]) -> tuple[Any, Outcome]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        ref = ready[0]
        step = self.steps.pop(ref)
        try:
            return ref, self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:  # the task raised, or its worker or node died
            failure = StepFailed(step.id, f"its Ray task ended without a result: {exc}", _kept(self.paths, step))
            return ref, Outcome(error=failure)

    def stop(self, handles: list[Any]) -> None:
        for ref in handles:
            self.ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.owns:
            self.ray.shutdown()
        self._remove_staging()


def _kept(paths: StudyPaths, step: Step) -> Path:
    """The notebook of a step whose worker died: what it had executed, kept as the failed one."""
    running = paths.notebooks / f".{step.id}.running.ipynb"
    failed = paths.notebooks / f"{step.id}.failed.ipynb"
    if running.exists():
        os.replace(running, failed)
    return failed
