"""Kernels the local executor starts (kernels.py): what a step's kernel is sent to import, when
the next step's kernel is started ahead, and that a step gets a live kernel started with its own
environment, never one started with another."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from lorastudy import pipeline
from lorastudy.pipeline import executors, kernels
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def steps(tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", root=tmp_path)
    paths = StudyPaths(tmp_path, cfg.study)
    return paths, {s.id: s for s in pipeline.plan(cfg, paths)}


def test_a_notebooks_imports_leave_out_its_parameters_magics_and_other_code(tmp_path):
    cells = [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "import os\nseed = 0"},
        {"cell_type": "markdown", "metadata": {}, "source": "import nothing"},
        {
            "cell_type": "code",
            "metadata": {},
            "source": ["%matplotlib inline\n", "from a.b import c, d\n", "x = c()\n"],
        },
        {"cell_type": "code", "metadata": {}, "source": "import e as f\nif x:\n    import g\n"},
    ]
    notebook = tmp_path / "n.ipynb"
    notebook.write_text(json.dumps({"cells": cells}))
    assert kernels.notebook_imports(notebook) == "from a.b import c, d\nimport e as f"


def test_each_step_is_sent_what_it_will_import(steps):
    _, by_id = steps
    code = {name: kernels.warm_up_code(step) for name, step in by_id.items()}
    for name, text in code.items():
        compile(text, name, "exec")  # every line is Python a kernel can run
    assert "import datasets" in code["01_data"] and "from lorastudy import data, models" in code["01_data"]
    assert "import bitsandbytes" in code["01_quantization"]
    assert "import peft" in code["02_train-qlora"] and "from lorastudy import train" in code["02_train-qlora"]
    # peft only where an adapter is loaded: not for the base, nor for the report, which loads no model
    assert "import peft" in code["03_evaluate-lora"] and "peft" not in code["03_evaluate-base"]
    assert not {"torch", "transformers", "peft"} & set(code["04_report"].replace(",", " ").split())
    assert "from lorastudy import pipeline, report, results" in code["04_report"]


class ScriptedKernel:
    def __init__(self, step, importing: bool):
        self.step, self.importing, self.stopped = step, importing, False

    def stop_if_running(self):
        self.stopped = True


class ScriptedKernels:
    """Hands each step a kernel that is still importing, or not, as the test says."""

    def __init__(self, importing: dict[str, bool]):
        self.importing, self.given, self.ahead = importing, [], []

    def for_step(self, step, environment):
        self.given.append(ScriptedKernel(step, self.importing[step.id]))
        return self.given[-1], self.given[-1].importing

    def start_ahead(self, step, environment):
        self.ahead.append(step.id)

    def close(self):
        pass


def test_the_next_kernel_starts_ahead_only_while_the_steps_own_is_importing(steps, monkeypatch):
    paths, by_id = steps
    order = list(by_id.values())
    ran = []
    monkeypatch.setattr(executors, "execute", lambda step, *a, kernel: ran.append((step.id, kernel.step.id)) or 1.0)
    executor = executors.LocalExecutor(paths, order)
    # While a step computes, a kernel importing beside it would slow it down.
    executor.kernels = ScriptedKernels({s.id: s.id in ("01_data", "02_train-qlora", "04_report") for s in order})
    for step in order:
        executor.start(step, {}, "identity", {})
    assert executor.kernels.ahead == ["01_quantization", "03_evaluate-base"]  # the report has no next step
    assert ran == [(s.id, s.id) for s in order]  # each step in its own kernel
    assert all(k.stopped for k in executor.kernels.given)

    # Where a GPU is visible none starts ahead: its CUDA context could count in a GPU step's peak.
    monkeypatch.setattr(executors, "gpus_visible", lambda: True)
    executor = executors.LocalExecutor(paths, order)
    executor.kernels = ScriptedKernels({s.id: True for s in order})
    for step in order:
        executor.start(step, {}, "identity", {})
    assert executor.kernels.ahead == [] and len(executor.kernels.given) == len(order)


def test_gpus_are_seen_without_importing_torch_unless_hidden(monkeypatch):
    assert not kernels.gpus_visible({"CUDA_VISIBLE_DEVICES": ""})
    assert not kernels.gpus_visible({"CUDA_VISIBLE_DEVICES": "-1"})
    monkeypatch.setattr(kernels.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert kernels.gpus_visible({"CUDA_VISIBLE_DEVICES": "0"}) and kernels.gpus_visible({})


def wait_for_imports(kernel: kernels.StartedKernel, timeout_s: float = 120) -> None:
    start = time.monotonic()
    while kernel.importing():
        assert time.monotonic() - start < timeout_s, "the kernel never finished its imports"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_step_gets_a_live_kernel_started_with_its_environment_and_never_one_with_another(steps):
    _, by_id = steps
    report, data = by_id["04_report"], by_id["01_data"]
    environment = pipeline.kernel_environment(report)
    started = kernels.Kernels()
    try:
        started.start_ahead(report, environment)
        ahead = started.ahead
        kernel, importing = started.for_step(report, environment)
        assert kernel is ahead and started.ahead is None
        wait_for_imports(kernel)
        assert not kernel.importing() and kernel.alive()
        kernel.stop()
        assert not kernel.alive()

        # Started for another step (one the scheduler skipped) with this step's environment: used,
        # since it ran nothing but imports; with another environment: stopped, and a new one started.
        started.start_ahead(data, environment)
        other = started.ahead
        kernel, _ = started.for_step(report, environment)
        assert kernel is other
        kernel.stop()
        started.start_ahead(report, {**environment, "CUDA_VISIBLE_DEVICES": "7"})
        unused = started.ahead
        kernel, importing = started.for_step(report, environment)
        assert kernel is not unused and importing and not unused.alive()
        kernel.stop()

        # One that died is replaced.
        started.start_ahead(report, environment)
        dead = started.ahead
        os.kill(dead.manager.provisioner.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while dead.alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        kernel, importing = started.for_step(report, environment)
        assert kernel is not dead and kernel.alive()
        kernel.stop()
    finally:
        started.close()
