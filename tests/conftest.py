from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# `make test` runs the suite in pytest-xdist workers, one per core, a test file to a worker. Each
# worker (and each study kernel it starts, which inherits the variable) gets its share of the
# cores' threads: torch's threads spinning on a core another worker holds would slow both down.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1 and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _WORKERS))


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    """The built-in tiny model, built once (it is deterministic) and shared with `make report`."""
    from lorastudy.models.builtin import tiny_model_dir
    from lorastudy.models.tiny import build_tiny_model

    path = tiny_model_dir(ROOT / "runs" / "_models")
    if not (path / "config.json").is_file():
        build_tiny_model(path)
    return path


def link_models(root: Path, *models: Path) -> Path:
    """Make `root` a folder to run studies in, with built models linked in rather than rebuilt."""
    folder = root / "runs" / "_models"
    folder.mkdir(parents=True, exist_ok=True)
    for model in models:
        if not (folder / model.name).exists():
            os.symlink(model, folder / model.name)
    return root


@pytest.fixture(scope="session")
def study_folder(tiny_model: Path):
    """A function that makes a folder ready to run a study in (the tiny model linked in)."""
    return lambda root: link_models(Path(root), tiny_model)


def as_in_the_foreground() -> None:
    """A `preexec_fn` that lets SIGINT stop a run as Ctrl-C stops a foreground one: a test suite
    started in the background (`nohup make test &`) hands its children SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_outputs(step) -> None:
    """Placeholders for a runner step's outputs (files and folders), as if it had run."""
    for output in step.outputs:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix:
            output.write_text("x")
        else:
            output.mkdir(exist_ok=True)


def lorastudy_run(params: Path, root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`lorastudy run PARAMS --root ROOT ARGS` in a fresh process, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "lorastudy", "run", str(params), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def run_study():
    return lorastudy_run


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """SmolLM2-135M-Instruct imported from its wheel once (`make install` does it) and shared
    with `make report`. Without the wheel every test that needs it fails, naming the install
    command: a real-model test never skips silently."""
    from lorastudy.models.builtin import SMOLLM2

    models = ROOT / "runs" / "_models"
    if not SMOLLM2.is_built(models):
        problems = SMOLLM2.missing()
        if problems:
            pytest.fail(f"{SMOLLM2.name} cannot be built: " + "; ".join(problems) + " (or run `make install`)")
        SMOLLM2.ensure(models)
    return SMOLLM2.path(models)


@pytest.fixture
def study_root(tmp_path: Path, study_folder) -> Path:
    """A folder to run a study in, with the built tiny model linked in rather than rebuilt."""
    return study_folder(tmp_path)


# Tests that need an optional extra: the marker, the modules it brings, how to install it, and the
# variable with which CI says the extra must be there.
EXTRA_MARKERS = {
    "cluster": (("ray",), "needs Ray: pip install -e '.[cluster]' (or make install EXTRAS=cluster)", "CLUSTER"),
    "lm_eval": (
        ("lm_eval",),
        "needs lm-evaluation-harness: pip install -e '.[lm_eval]' (or make install EXTRAS=lm_eval)",
        "LM_EVAL",
    ),
    "bench": (
        ("trl", "lm_eval"),
        "needs TRL and lm-evaluation-harness: pip install -e '.[bench]' (or make install EXTRAS=bench)",
        "BENCH",
    ),
}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test of an optional extra (`cluster`: Ray; `lm_eval`: lm-evaluation-harness; `bench`: TRL
    and lm-evaluation-harness) is skipped with the reason where the extra is not installed (pytest
    -ra lists it), or fails where LORASTUDY_REQUIRE_<EXTRA>=1 says it must be there (CI)."""
    import importlib.util

    for marker, (modules, reason, variable) in EXTRA_MARKERS.items():
        if item.get_closest_marker(marker) is None or all(importlib.util.find_spec(m) for m in modules):
            continue
        if os.environ.get(f"LORASTUDY_REQUIRE_{variable}") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
