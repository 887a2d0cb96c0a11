"""Runs a study (`run_study`): the scheduler decides each step, an executor runs it (papermill,
each notebook in its own kernel: execution.py), then nbconvert renders the executed report
without code cells (rendering.py). One run of a study at a time holds its folder
(lock.study_lock).

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

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..study.load import load_config
from ..study.paths import StudyPaths
from .execution import StepFailed, use_this_interpreter, write_step_times
from .lock import study_lock
from .records import InconsistentRuns, identity, is_done, read_records, why_not_done
from .rendering import render
from .steps import Step, plan


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
            if self.force and step.checkpoints is not None and step.checkpoints.is_dir():
                shutil.rmtree(step.checkpoints)  # redone means from the start, not from a checkpoint
                reason += "; its checkpoints removed"
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
