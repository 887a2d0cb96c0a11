"""Kernels started ahead, for the local executor. A step's kernel spends seconds importing
before its work starts: its notebook's imports, and the libraries the package imports only in the
functions that use them (transformers, datasets, peft, bitsandbytes: `LIBRARIES`). On two cores
that was 3 to 6 s a step, more than the work of most of the smoke study's steps.

So the executor starts each step's kernel itself and sends it those imports at once, and while
a step's kernel is still importing it starts the next step's kernel as well: imports run on one
core, so two of them share two cores. It does not start one while a step computes: on a machine
whose cores the step's threads fill, a kernel importing beside it slows the step by about as much
as it saves, more where the step's threads wait spinning for a descheduled one. With long steps
(the SmolLM2 study's) every other step starts with its imports done; with short ones (the smoke
study's) most do. `results/steps.csv` shows each step's kernel start and imports.

Only where no GPU is visible: a kernel importing bitsandbytes (which asks torch for each GPU's
capability) may create a CUDA context, and a GPU step's peak memory is the device's used memory,
every process's context included. On a GPU machine each step's kernel still starts with its
imports sent at once, and no kernel starts beside a running step. A kernel started ahead holds
about 0.6 GB of memory (torch, transformers, peft) while it waits.

A kernel started ahead is still a fresh kernel for its step: it has run nothing but imports, so
no state, memory peak or seed carries over from another step. One started for a step that does
not come next (the scheduler skipped it) is used by the step that does, whose own imports then
run in it, if it was started with that step's environment (the GPUs it sees); otherwise it is
stopped unused. One that died is replaced by a new one.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from .steps import NOTEBOOKS_DIR, Step

# What a step imports inside the package's functions (which import them where they are used, so
# that `lorastudy --help` and the report start fast), besides its notebook's imports.
LIBRARIES = {
    "01_data.ipynb": ("datasets", "transformers.AutoTokenizer"),
    "01_quantization.ipynb": ("bitsandbytes", "transformers.AutoModelForCausalLM"),
    "02_train.ipynb": ("peft", "transformers.Trainer", "transformers.AutoModelForCausalLM"),
    "03_evaluate.ipynb": ("transformers.AutoModelForCausalLM", "transformers.AutoTokenizer"),
}


def gpus_visible(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether a kernel started with `environ` could see a GPU, told without importing torch (a
    second): an NVIDIA or AMD device, unless CUDA_VISIBLE_DEVICES hides every one."""
    if environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    devices = Path("/dev")
    return any(devices.glob("nvidia[0-9]*")) or (devices / "kfd").exists() or shutil.which("nvidia-smi") is not None


def notebook_imports(notebook: Path) -> str:
    """The import statements of a notebook's code cells (not its parameters cell), in order."""
    found = []
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell["metadata"].get("tags", []):
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        # IPython's magics and shell lines are not Python.
        python = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        found += [ast.unparse(node) for node in ast.parse(python).body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(found)


def warm_up_code(step: Step) -> str:
    """What a step's kernel is sent to import before the step runs."""
    libraries = list(LIBRARIES.get(step.notebook, ()))
    if step.notebook == "03_evaluate.ipynb" and any(name.startswith("02_train") for name in step.inputs):
        libraries.append("peft")  # an evaluation of a trained adapter loads it with peft
    lines = [
        f"import {name}" if "." not in name else "from {} import {}".format(*name.rsplit(".", 1)) for name in libraries
    ]
    return "\n".join([*lines, notebook_imports(NOTEBOOKS_DIR / step.notebook)])


class StartedKernel:
    """A kernel started for a step, with the client that sent it the step's imports."""

    def __init__(self, step: Step, environment: dict[str, str], ahead: bool = False):
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        self.environment, self.ahead = environment, ahead  # ahead: while the step before ran
        self.manager = AsyncKernelManager(kernel_name="python3")
        # As nbclient starts a notebook's kernel: in the notebooks' folder, with no history file.
        run_sync(self.manager.start_kernel)(
            cwd=str(NOTEBOOKS_DIR), env=environment, extra_arguments=["--HistoryManager.hist_file=:memory:"]
        )
        self.client = self.manager.client()
        self.client.start_channels()
        # Queued until the kernel is up; silent, so the step's execution counts start at 1.
        self.client.execute(warm_up_code(step), silent=True, store_history=False)

    def alive(self) -> bool:
        from jupyter_core.utils import run_sync

        return run_sync(self.manager.is_alive)()

    def importing(self) -> bool:
        """Whether the kernel has not yet replied that its imports are done."""
        from jupyter_core.utils import run_sync

        return not run_sync(self.client.shell_channel.msg_ready)()

    def hand_over(self):
        """The kernel manager, for nbclient to run the step in (its own client) and stop."""
        self.client.stop_channels()
        return self.manager

    def stop(self) -> None:
        self.client.stop_channels()
        self.stop_if_running()

    def stop_if_running(self) -> None:
        """Stop the kernel unless nbclient did (it does when the notebook ends, failed or not)."""
        from jupyter_core.utils import run_sync

        if self.manager.has_kernel and self.alive():
            run_sync(self.manager.shutdown_kernel)(now=True)


class Kernels:
    """The local executor's kernels: the step's own, and at most one started ahead."""

    def __init__(self):
        self.ahead: StartedKernel | None = None

    def for_step(self, step: Step, environment: dict[str, str]) -> tuple[StartedKernel, bool]:
        """The kernel for `step`: the one started ahead if it was started with this environment
        and is alive, else a new one; and whether it is still importing."""
        kernel, self.ahead = self.ahead, None
        if kernel is not None and not (kernel.environment == environment and kernel.alive()):
            kernel.stop()
            kernel = None
        if kernel is None:
            return StartedKernel(step, environment), True
        return kernel, kernel.importing()

    def start_ahead(self, step: Step, environment: dict[str, str]) -> None:
        self.close()
        self.ahead = StartedKernel(step, environment, ahead=True)

    def close(self) -> None:
        """Stop the kernel started ahead, if any."""
        if self.ahead is not None:
            self.ahead.stop()
        self.ahead = None


def adopting(manager) -> type:
    """A kernel manager class for nbclient (its `kernel_manager_class`) whose one instance is
    `manager`, already started: nbclient then runs the notebook in it and stops it and its own
    client when the notebook is done, as it does a kernel it started."""

    class Adopted(type(manager)):
        def __new__(cls, *args, **kwargs):
            return manager  # not an instance of Adopted, so __init__ does not run again

    return Adopted
