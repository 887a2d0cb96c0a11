"""The scheduler that both executors run on: which steps start when, what is skipped, what a
failure stops. An executor that runs nothing stands in for papermill here: it records a step
as the runner does when the test says it finishes."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
from conftest import write_outputs

from lorastudy import pipeline
from lorastudy.pipeline import execution
from lorastudy.pipeline.executors import Outcome
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.util.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[2]


class Scripted:
    """Starts nothing; finishes the running step that comes first in `order` (plan order if
    none), writing its record and outputs as `pipeline.execute` would, or failing those in `fail`."""

    def __init__(self, paths: StudyPaths, slots: float, order: list[str] = (), fail: tuple[str, ...] = ()):
        self.paths, self.slots, self.order, self.fail = paths, slots, list(order), fail
        self.events: list[tuple[str, str, frozenset]] = []  # (start or finish, step, the steps running then)
        self.running: dict[str, pipeline.Step] = {}
        self.identities: dict[str, tuple[str, dict]] = {}
        self.stopped: list[str] | None = None

    def where(self, step: pipeline.Step) -> str:
        return ""

    def start(self, step: pipeline.Step, study: dict, step_identity: str, consumed: dict) -> str:
        self.running[step.id] = step
        self.events.append(("start", step.id, frozenset(self.running)))
        self.identities[step.id] = (step_identity, consumed)
        return step.id

    def next_finished(self, handles: list[str]) -> tuple[str, Outcome]:
        ranked = [h for h in self.order if h in handles] + handles
        name = ranked[0]
        step = self.running.pop(name)
        self.events.append(("finish", name, frozenset(self.running)))
        if name in self.fail:
            return name, Outcome(error=pipeline.StepFailed(name, "it was told to fail", Path("failed.ipynb")))
        step_identity, consumed = self.identities[name]
        write_outputs(step)
        record = {"step": name, "identity": step_identity, "run": f"run-of-{name}", "inputs": consumed}
        atomic_write_json(self.paths.steps / f"{name}.json", record)
        return name, Outcome(wall_s=1.0)

    def stop(self, handles: list[str]) -> None:
        self.stopped = handles

    def started(self) -> list[str]:
        return [name for kind, name, _ in self.events if kind == "start"]


@pytest.fixture
def study(tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", root=tmp_path)
    paths = StudyPaths(tmp_path, cfg.study)
    return paths, pipeline.plan(cfg, paths)


def schedule(paths: StudyPaths, steps: list[pipeline.Step], executor: Scripted, force: bool = False) -> list[str]:
    lines: list[str] = []
    pipeline.Scheduler(steps, paths, executor, {}, force, lines.append).run()
    return lines


def test_one_slot_runs_the_plan_in_order(study):
    paths, steps = study
    executor = Scripted(paths, slots=1)
    schedule(paths, steps, executor)
    assert executor.started() == [s.id for s in steps]
    assert all(len(running) <= 1 for _, _, running in executor.events)


def test_independent_steps_run_at_once_and_a_step_waits_for_its_inputs(study):
    paths, steps = study
    # The evaluation of the base finishes last among the three that need only the data.
    executor = Scripted(paths, slots=math.inf, order=["01_data", "02_train-lora", "02_train-qlora"])
    schedule(paths, steps, executor)
    running_after_data = {name: running for kind, name, running in executor.events if kind == "start"}
    # Both trainings and the base's evaluation were running together.
    assert {"02_train-lora", "02_train-qlora", "03_evaluate-base"} <= running_after_data["03_evaluate-base"]
    finished = [name for kind, name, _ in executor.events if kind == "finish"]
    by_id = {s.id: s for s in steps}
    for name in executor.started():
        start = executor.events.index(next(e for e in executor.events if e[:2] == ("start", name)))
        done_before = {n for kind, n, _ in executor.events[:start] if kind == "finish"}
        assert set(by_id[name].inputs) <= done_before, f"{name} started before its inputs finished"
    assert finished[-1] == "04_report" and len(finished) == len(steps)


def test_a_failure_starts_nothing_new_and_lets_the_running_steps_finish(study):
    paths, steps = study
    executor = Scripted(paths, slots=math.inf, order=["01_data", "02_train-lora"], fail=("02_train-lora",))
    lines: list[str] = []
    with pytest.raises(pipeline.StepFailed) as info:
        pipeline.Scheduler(steps, paths, executor, {}, False, lines.append).run()
    assert info.value.step == "02_train-lora"
    after_data = ["01_quantization", "02_train-lora", "02_train-qlora", "03_evaluate-base"]
    assert executor.started() == ["01_data", *after_data]
    # The others that were running finished and kept their records; nothing was cancelled.
    assert {"01_quantization", "02_train-qlora", "03_evaluate-base"} <= {p.stem for p in paths.steps.glob("*.json")}
    assert executor.stopped is None
    assert any("02_train-lora: failed; waiting for the steps still running" in line for line in lines)


def test_a_finished_study_starts_nothing_and_force_redoes_all(study):
    paths, steps = study
    schedule(paths, steps, Scripted(paths, slots=math.inf))
    again = Scripted(paths, slots=math.inf)
    lines = schedule(paths, steps, again)
    assert again.started() == [] and sum("skipped" in line for line in lines) == len(steps)
    forced = Scripted(paths, slots=math.inf)
    schedule(paths, steps, forced, force=True)
    assert sorted(forced.started()) == sorted(s.id for s in steps)


def test_an_interrupted_scheduler_stops_what_its_executor_runs(study):
    paths, steps = study

    class Interrupted(Scripted):
        def next_finished(self, handles):
            if "02_train-lora" in handles:
                raise KeyboardInterrupt
            return super().next_finished(handles)

    executor = Interrupted(paths, slots=math.inf)
    with pytest.raises(KeyboardInterrupt):
        schedule(paths, steps, executor)
    assert sorted(executor.stopped) == ["01_quantization", "02_train-lora", "02_train-qlora", "03_evaluate-base"]


def test_a_step_on_one_device_sees_one_gpu(study, monkeypatch):
    """A one-process training would otherwise be spread over every GPU by the Trainer
    (DataParallel, for the 16-bit model only): each step that runs on one device sees one."""
    paths, steps = study
    by_id = {s.id: s for s in steps}
    one = [by_id["01_quantization"], by_id["02_train-lora"], by_id["03_evaluate-qlora"]]
    assert all(s.devices == 1 for s in one)  # the quantization errors run on the GPU too
    for step in one:
        assert pipeline.device_environment(step, {"CUDA_VISIBLE_DEVICES": "2,3"}) == {"CUDA_VISIBLE_DEVICES": "2"}
        assert pipeline.device_environment(step, {}) == {"CUDA_VISIBLE_DEVICES": "0"}
    assert pipeline.device_environment(by_id["01_data"], {"CUDA_VISIBLE_DEVICES": "2,3"}) == {}
    several = pipeline.Step(**{**vars(by_id["02_train-lora"]), "devices": 2})
    assert pipeline.device_environment(several, {"CUDA_VISIBLE_DEVICES": "2,3"}) == {}  # a GPU per process

    # The kernel papermill starts inherits this process's environment, set for the step alone.
    seen = []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,6")
    monkeypatch.setattr(execution, "_execute_notebook", lambda *a: seen.append(os.environ["CUDA_VISIBLE_DEVICES"]))
    monkeypatch.setattr(execution, "notebook_timing", lambda path: {})
    monkeypatch.setattr(execution.os, "replace", lambda a, b: None)
    execution.execute(by_id["03_evaluate-lora"], paths, {}, "identity", {})
    assert seen == ["5"] and os.environ["CUDA_VISIBLE_DEVICES"] == "5,6"
    # A kernel the local executor starts for the step (kernels.py) is given the same environment.
    started = pipeline.kernel_environment(by_id["03_evaluate-lora"])
    assert started == {**os.environ, "CUDA_VISIBLE_DEVICES": "5"}
    assert pipeline.kernel_environment(by_id["01_data"])["CUDA_VISIBLE_DEVICES"] == "5,6"


def test_a_ray_task_asks_for_a_gpu_for_each_device_its_step_runs_on(study):
    from lorastudy.pipeline.executors import RayExecutor

    _, steps = study
    executor = object.__new__(RayExecutor)  # its resource requests alone, without starting Ray
    executor.has_gpus = True
    asked = {s.id: executor.resources(s) for s in steps}
    assert asked["01_quantization"] == {"num_cpus": 1, "num_gpus": 1}
    assert asked["01_data"] == asked["04_report"] == {"num_cpus": 1, "num_gpus": 0}
    executor.has_gpus = False
    assert asked["01_quantization"]["num_cpus"] == executor.resources(steps[1])["num_cpus"] == 1


def test_force_removes_a_trainings_checkpoints_and_a_plain_rerun_keeps_them(study):
    paths, steps = study
    schedule(paths, steps, Scripted(paths, slots=1))
    checkpoint = paths.checkpoints("qlora") / "checkpoint-20"
    checkpoint.mkdir(parents=True)
    assert all(s.checkpoints == paths.checkpoints(s.id.split("-", 1)[1]) for s in steps if s.id.startswith("02_"))
    schedule(paths, steps, Scripted(paths, slots=1))  # everything done: nothing runs, nothing is removed
    assert checkpoint.is_dir()
    lines = schedule(paths, steps, Scripted(paths, slots=1), force=True)
    assert not paths.checkpoints("qlora").exists()
    assert any("02_train-qlora: running" in line and "its checkpoints removed" in line for line in lines)


def test_a_training_step_is_told_its_id_and_identity(study, monkeypatch):
    paths, steps = study
    seen = {}
    monkeypatch.setattr(
        execution, "_execute_notebook", lambda step, output, parameters, kernel: seen.update(parameters)
    )
    monkeypatch.setattr(execution, "notebook_timing", lambda path: {})
    monkeypatch.setattr(execution.os, "replace", lambda a, b: None)
    train = next(s for s in steps if s.id == "02_train-lora")
    execution.execute(train, paths, {"root": "."}, "abc123", {})
    assert seen["step"] == "02_train-lora" and seen["identity"] == "abc123" and seen["method"] == "lora"
    seen.clear()
    execution.execute(steps[0], paths, {"root": "."}, "def456", {})
    assert "identity" not in seen and "step" not in seen
