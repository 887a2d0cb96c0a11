"""Every report comes from one consistent run: a `--force` run stopped at any step, a change
to the code, and two runs at once, on a small real study through `lorastudy run`.

Each test starts from a copy of one uninterrupted run (the `baseline`), and its metrics must
equal that run's: training and evaluation are deterministic on a CPU.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from conftest import as_in_the_foreground

from lorastudy.util.files import read_json

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STUDY = "consistency"
STEPS = ["01_data", "02_train-lora", "03_evaluate-base", "03_evaluate-lora", "04_report"]
INPUTS = {
    "01_data": [],
    "02_train-lora": ["01_data"],
    "03_evaluate-base": ["01_data"],
    "03_evaluate-lora": ["01_data", "02_train-lora"],
    "04_report": ["01_data", "02_train-lora", "03_evaluate-base", "03_evaluate-lora"],
}
PARAMS = f"""study: {STUDY}
methods: [base, lora]
model: {{name: builtin:tiny-qwen3, dtype: float32}}
data: {{source: synthetic, train_samples: 32, max_seq_len: 192}}
tasks:
  arc_challenge: {{n: 8}}
  openmath: {{n: 8, max_new_tokens: 16}}
  squad: {{n: 8, max_new_tokens: 8}}
lora: {{r: 8, alpha: 16}}
train: {{epochs: 1, batch_size: 16, grad_accum: 1, learning_rate: 4.0e-3, logging_steps: 1}}
eval: {{batch_size: 16, latency_items: 2}}
report: {{examples: 2}}
"""


def new_root(path: Path, study_folder, copy_of: Path | None = None) -> Path:
    """A study folder with the built model linked in, and a copy of another root's study."""
    study_folder(path)
    (path / "params.yaml").write_text(PARAMS)
    if copy_of is not None:
        shutil.copytree(copy_of / "runs" / STUDY, path / "runs" / STUDY, symlinks=True)
    return path


def command(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lorastudy", "run", str(root / "params.yaml"), "--root", str(root), *args]


def run(root: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command(root, *args), capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def start(root: Path, *args: str) -> subprocess.Popen:
    # Output to a file, not a pipe: a pipe nobody reads would stall the run when it fills.
    log = (root / "run.log").open("w")
    return subprocess.Popen(
        command(root, *args), stdout=log, stderr=subprocess.STDOUT, text=True, preexec_fn=as_in_the_foreground
    )


def wait_until_running(root: Path, step: str, proc: subprocess.Popen) -> None:
    running = root / "runs" / STUDY / "notebooks" / f".{step}.running.ipynb"
    deadline = time.time() + 600
    while not running.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert running.exists(), f"{step} never started:\n" + (root / "run.log").read_text()[-3000:]


def ran_and_skipped(stdout: str) -> tuple[list[str], list[str]]:
    ran = [s for s in STEPS if f"{s}: running" in stdout]
    skipped = [s for s in STEPS if f"{s}: done already" in stdout]
    return ran, skipped


def when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def assert_one_chain(root: Path) -> dict[str, dict]:
    """Each step was built from the runs of its inputs that are recorded now, after they finished."""
    records = {p.stem: read_json(p) for p in (root / "runs" / STUDY / "steps").glob("*.json")}
    assert sorted(records) == sorted(STEPS)
    for name, record in records.items():
        assert sorted(record["inputs"]) == INPUTS[name]
        for source, run_id in record["inputs"].items():
            assert records[source]["run"] == run_id, f"{name} was built from a run of {source} that was replaced"
            assert when(record["started"]) >= when(records[source]["finished"]), f"{name} is older than {source}"
    leftovers = [p.name for p in (root / "runs" / STUDY / "notebooks").glob(".*.running.ipynb")]
    assert not leftovers
    return records


def results(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "runs" / STUDY / "results" / f"{name}.csv")


def assert_same_results(root: Path, baseline: Path) -> None:
    for name in ("metrics", "comparisons"):
        pd.testing.assert_frame_equal(results(root, name), results(baseline, name))


def parameters_hash(root: Path) -> str:
    report = (root / "rendered" / f"{STUDY}.md").read_text()
    return report.split("| parameters hash | `", 1)[1].split("`", 1)[0]


@dataclass
class Baseline:
    root: Path
    pid: int
    returncode: int
    second: subprocess.CompletedProcess
    second_s: float


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, study_folder) -> Baseline:
    """One uninterrupted run; while it runs, a second run of the same study is started."""
    root = new_root(tmp_path_factory.mktemp("baseline"), study_folder)
    first = start(root)
    wait_until_running(root, "01_data", first)
    begin = time.perf_counter()
    second = subprocess.run(command(root), capture_output=True, text=True, timeout=120)
    second_s = time.perf_counter() - begin
    first.wait(timeout=900)
    return Baseline(root, first.pid, first.returncode, second, second_s)


def test_a_second_run_of_a_running_study_exits_3_and_the_first_finishes_intact(baseline):
    second = baseline.second
    assert second.returncode == 3, second.stdout[-2000:] + second.stderr[-2000:]
    assert f"error: study {STUDY} is already being run by pid {baseline.pid}" in second.stderr
    assert baseline.second_s < 20 and "Traceback" not in second.stderr and "running" not in second.stdout
    log = (baseline.root / "run.log").read_text()
    assert baseline.returncode == 0, log[-3000:]
    assert ran_and_skipped(log) == (STEPS, [])
    records = assert_one_chain(baseline.root)
    assert not list((baseline.root / "runs" / STUDY / "notebooks").glob("*.failed.ipynb"))
    metrics = results(baseline.root, "metrics")
    assert set(metrics.method) == {"base", "lora"} and metrics.value.notna().all()
    # The report lists the run of every step it was built from.
    report = (baseline.root / "rendered" / f"{STUDY}.md").read_text()
    for name in STEPS[:-1]:
        assert f"| {name} | `{records[name]['identity'][:8]}` | `{records[name]['run'][:8]}` |" in report
    assert f"This report is step 04_report, identity `{records['04_report']['identity'][:8]}`" in report


@pytest.mark.parametrize("stopped_in", ["01_data", "02_train-lora", "03_evaluate-lora", "04_report"])
def test_a_force_run_stopped_anywhere_is_completed_into_one_chain(baseline, tmp_path, study_folder, stopped_in):
    root = new_root(tmp_path, study_folder, copy_of=baseline.root)
    forced = start(root, "--force")
    wait_until_running(root, stopped_in, forced)
    time.sleep(0.5)  # into the step, not at its first instant
    forced.send_signal(signal.SIGINT)
    forced.wait(timeout=120)
    log = (root / "run.log").read_text()
    assert forced.returncode == 130 and "finished steps are kept" in log, log[-3000:]
    assert not (root / "runs" / STUDY / "steps" / f"{stopped_in}.json").exists()

    rerun = run(root)
    # Everything from the stopped step on is redone: what it stopped in, and all that consumed older runs.
    at = STEPS.index(stopped_in)
    assert ran_and_skipped(rerun.stdout) == (STEPS[at:], STEPS[:at]), rerun.stdout
    assert_one_chain(root)
    assert_same_results(root, baseline.root)
    # The same study in another folder: the same parameters hash in its report.
    assert parameters_hash(root) == parameters_hash(baseline.root)


def changed_checkout(path: Path) -> Path:
    """A copy of the checkout's package, notebooks and params, to change their code; returns its
    lib folder. pyproject.toml marks it a checkout, where the package finds its notebooks."""
    shutil.copytree(ROOT / "lib" / "lorastudy", path / "lib" / "lorastudy")
    for folder in ("notebooks", "params"):
        shutil.copytree(ROOT / folder, path / folder)
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    return path / "lib"


def edit(lib: Path, module: str, old: str, new: str) -> None:
    path = lib / "lorastudy" / f"{module.replace('.', '/')}.py"
    assert old in path.read_text(), f"{module}.py no longer holds {old!r}"
    path.write_text(path.read_text().replace(old, new, 1))


def test_a_changed_scorer_redoes_evaluation_and_report_not_training(baseline, tmp_path, study_folder):
    root = new_root(tmp_path / "study", study_folder, copy_of=baseline.root)
    lib = changed_checkout(tmp_path / "checkout")
    env = {**os.environ, "PYTHONPATH": str(lib)}
    # SQuAD F1 halved: a scorer change whose effect is visible in the results.
    edit(lib, "tasks.metrics", "def squad_f1(", "def squad_f1_official(")
    with (lib / "lorastudy" / "tasks" / "metrics.py").open("a") as handle:
        handle.write("\n\ndef squad_f1(prediction, references):\n")
        handle.write("    return 0.5 * squad_f1_official(prediction, references)\n")
    rescored = run(root, env=env)
    assert ran_and_skipped(rescored.stdout) == (STEPS[2:], STEPS[:2]), rescored.stdout
    assert "03_evaluate-lora: running 03_evaluate.ipynb (task declarations changed: squad.code" in rescored.stdout
    assert "04_report: running 04_report.ipynb (03_evaluate-base, 03_evaluate-lora were redone since)" in (
        rescored.stdout
    )
    records = assert_one_chain(root)
    before = {p.stem: read_json(p) for p in (baseline.root / "runs" / STUDY / "steps").glob("*.json")}
    assert records["02_train-lora"]["run"] == before["02_train-lora"]["run"]  # the same adapter
    metrics, old = results(root, "metrics").set_index(["method", "task", "metric"]), results(baseline.root, "metrics")
    old = old.set_index(["method", "task", "metric"])
    for method in ("base", "lora"):
        assert metrics.value[(method, "squad", "f1")] == pytest.approx(0.5 * old.value[(method, "squad", "f1")])
        assert metrics.value[(method, "squad", "exact_match")] == old.value[(method, "squad", "exact_match")]

    # The report's own code changed: only the report is redone.
    edit(lib, "report.reproducibility", '"## Provenance",', '"## Provenance (changed)",')
    reported = run(root, env=env)
    assert ran_and_skipped(reported.stdout) == (STEPS[-1:], STEPS[:-1]), reported.stdout
    assert "code changed: report.reproducibility.provenance" in reported.stdout
    assert "## Provenance (changed)" in (root / "rendered" / f"{STUDY}.md").read_text()
    assert_one_chain(root)


def test_a_run_after_a_killed_run_takes_over_its_lock(baseline, tmp_path, study_folder):
    root = new_root(tmp_path, study_folder, copy_of=baseline.root)
    # Only the report is out of date for this setting, so the killed run is killed in it.
    killed = start(root, "-p", "report.examples=1")
    wait_until_running(root, "04_report", killed)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    assert str(killed.pid) in (root / "runs" / STUDY / ".lock").read_text()
    time.sleep(2)  # its kernel notices that its parent is gone and exits
    after = run(root, "-p", "report.examples=1")
    assert f"study {STUDY}: taking over the lock left by pid {killed.pid}" in after.stdout
    assert ran_and_skipped(after.stdout) == (STEPS[-1:], STEPS[:-1])
    assert_one_chain(root)
    assert_same_results(root, baseline.root)
    assert (root / "runs" / STUDY / ".lock").read_text() == ""
