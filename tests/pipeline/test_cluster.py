"""`lorastudy run --executor ray` on a local Ray instance: the same study as the local executor,
with the steps that do not read each other's outputs (the two trainings, the base's
evaluation) running at the same time, the same results, and the same resume and failure
report. The smoke study is shrunk so that both executors run it in one test run on 2 cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from test_faults import small_study

from lorastudy.util.files import read_json

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
SHRUNK = [
    *("-p", "tasks.arc_challenge.n=20", "-p", "tasks.openmath.n=20", "-p", "tasks.squad.n=20"),
    *("-p", "train.max_steps=6", "-p", "eval.latency_items=4"),
]
STEPS = [
    *("01_data", "01_quantization", "02_train-lora", "02_train-qlora"),
    *("03_evaluate-base", "03_evaluate-lora", "03_evaluate-qlora"),
]

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def new_root(tmp_path_factory, tiny_model, name: str) -> Path:
    root = tmp_path_factory.mktemp(name)
    (root / "runs" / "_models").mkdir(parents=True)
    (root / "runs" / "_models" / tiny_model.name).symlink_to(tiny_model)
    return root


def lorastudy_run(
    params: Path, root: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """`lorastudy run`, timed. Ray gives each step's process as many threads as the CPUs it asked
    for (one); the local executor's would take every core. One thread per step for both, so that
    the wall times compare the executors rather than thread counts."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "lorastudy", "run", str(params), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    return result, time.perf_counter() - start


@pytest.fixture(scope="module")
def both(tmp_path_factory, tiny_model):
    """The shrunk smoke study run by each executor, one after the other, timed."""
    local_root = new_root(tmp_path_factory, tiny_model, "local")
    ray_root = new_root(tmp_path_factory, tiny_model, "ray")
    local, local_s = lorastudy_run(SMOKE, local_root, *SHRUNK)
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    ray, ray_s = lorastudy_run(SMOKE, ray_root, *SHRUNK, "--executor", "ray")
    assert ray.returncode == 0, ray.stdout[-3000:] + ray.stderr[-3000:]
    busy = {name: records(root) for name, root in (("local", local_root), ("ray", ray_root))}
    step_s = {name: sum(r["wall_s"] for r in recs.values()) for name, recs in busy.items()}
    print(
        f"\nwall time of `lorastudy run` on the shrunk smoke study: local executor {local_s:.1f} s, Ray executor "
        f"{ray_s:.1f} s (a local Ray instance, started within it; one thread per step); "
        f"local / Ray = {local_s / ray_s:.2f}. "
        f"From the first step's start to the last one's end: local {span(busy['local']):.1f} s, "
        f"Ray {span(busy['ray']):.1f} s. Steps' own times added up: local {step_s['local']:.1f} s, "
        f"Ray {step_s['ray']:.1f} s, {step_s['local'] / span(busy['local']):.2f} and "
        f"{step_s['ray'] / span(busy['ray']):.2f} times the span (above 1: steps ran at the same time)"
    )
    return {"local": (local_root, local), "ray": (ray_root, ray)}


def records(root: Path) -> dict[str, dict]:
    return {p.stem: read_json(p) for p in (root / "runs" / "smoke" / "steps").glob("*.json")}


def when(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def span(recs: dict[str, dict]) -> float:
    first = min(when(r["started"]) for r in recs.values())
    return (max(when(r["finished"]) for r in recs.values()) - first).total_seconds()


def overlap(a: dict, b: dict) -> bool:
    return when(a["started"]) < when(b["finished"]) and when(b["started"]) < when(a["finished"])


def table(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "runs" / "smoke" / "results" / f"{name}.csv")


def test_both_executors_give_the_same_results(both):
    (local_root, _), (ray_root, _) = both["local"], both["ray"]
    for name in ("metrics", "comparisons"):
        pd.testing.assert_frame_equal(table(local_root, name), table(ray_root, name))
    for run in ("lora", "qlora"):
        loss = [pd.read_csv(root / "runs" / "smoke" / "train" / f"{run}.loss.csv") for root in (local_root, ray_root)]
        pd.testing.assert_frame_equal(*loss)
    # The same steps, whichever executor ran them: parameters, code and tasks (the runs differ, as every run does).
    local, ray = records(local_root), records(ray_root)

    def what(recs: dict) -> dict:
        return {n: (r["params"], r["code"]["hash"], r["tasks"], sorted(r["inputs"])) for n, r in recs.items()}

    assert sorted(local) == STEPS + ["04_report"] and what(local) == what(ray)


def test_ray_runs_independent_steps_at_once_and_the_local_executor_one_at_a_time(both):
    (local_root, local), (ray_root, ray) = both["local"], both["ray"]
    steps = records(ray_root)
    assert overlap(steps["02_train-lora"], steps["02_train-qlora"]), (steps["02_train-lora"], steps["02_train-qlora"])
    for name in STEPS[1:]:
        for source in steps[name]["inputs"]:
            assert when(steps[name]["started"]) >= when(steps[source]["finished"]), f"{name} began before {source}"
    sequential = records(local_root)
    assert not any(overlap(sequential[a], sequential[b]) for a in STEPS for b in STEPS if a < b)
    assert "as a Ray task (1 CPU, 0 GPU)" in ray.stdout and "a local instance" in ray.stdout
    assert "Ray" not in local.stdout
    # The report shows each step's start and end, so a reader sees the overlap too.
    report = (ray_root / "rendered" / "smoke.md").read_text()
    assert "| step | identity | run | built from | started | finished |" in report
    lora = steps["02_train-lora"]
    assert f"| {lora['started'][:19].replace('T', ' ')} UTC | {lora['finished'][:19].replace('T', ' ')} UTC |" in report


def test_either_executor_resumes_what_the_other_ran(both):
    ray_root, _ = both["ray"]
    local, _ = lorastudy_run(SMOKE, ray_root, *SHRUNK)
    assert local.returncode == 0, local.stderr[-2000:]
    assert local.stdout.count("done already") == len(STEPS) + 1 and "running" not in local.stdout
    again, _ = lorastudy_run(SMOKE, ray_root, *SHRUNK, "-p", "report.examples=3", "--executor", "ray")
    assert again.returncode == 0, again.stderr[-2000:]
    last = len(STEPS) + 1
    assert again.stdout.count("done already") == len(STEPS) and f"[{last}/{last}] 04_report: running" in again.stdout


def test_a_failing_step_on_ray_is_reported_with_its_notebook_kept(tmp_path_factory, tiny_model):
    root = new_root(tmp_path_factory, tiny_model, "failing")
    params = small_study(root, "failing")
    # An answer key that is not among the labels: the data step finds no usable ARC item.
    (root / "data" / "arc_challenge.jsonl").write_text(
        '{"id": "x", "question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "Z"}\n'
    )
    result, _ = lorastudy_run(params, root, "-p", "tasks.arc_challenge.n=null", "--executor", "ray")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "step 01_data failed" in result.stderr and "tasks.arc_challenge: no usable items" in result.stderr
    assert (root / "runs" / "failing" / "notebooks" / "01_data.failed.ipynb").is_file()
    assert "Traceback" not in result.stderr and "03_evaluate" not in result.stdout


def test_bad_executor_choices_stop_before_anything_runs(tmp_path):
    result, _ = lorastudy_run(SMOKE, tmp_path, "--address", "auto")
    assert (
        result.returncode == 2 and "error: --address: names a Ray cluster, so it needs --executor ray" in result.stderr
    )
    big, _ = lorastudy_run(
        SMOKE, tmp_path, "-p", "train.processes=64", "-p", "train.grad_accum=64", "--executor", "ray"
    )
    assert big.returncode == 2, big.stderr[-2000:]
    assert "02_train-lora asks for 64 CPUs and 0 GPUs, which no node of the Ray cluster has" in big.stderr


# A Ray instance of its own, as a cluster's head would be: started in a folder other than the
# checkout, with a `lorastudy` on its Python path that refuses to be imported. A worker (and the
# kernel it starts) that imported anything but the package shipped with the job would fail.
HEAD = """
import signal, sys, time
import ray
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024)
print(ray.get_runtime_context().gcs_address, flush=True)
try:
    sys.stdin.read()  # until the test closes it
finally:
    ray.shutdown()
"""

# A cluster that a ray.init() starts asks its other drivers for a token (Ray 2.60) unless told not to.
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}

REFUSED = "a lorastudy other than the one shipped with the job was imported"


@pytest.fixture
def head_without_checkout(tmp_path):
    """The address of a local Ray instance whose workers start in `elsewhere/` and find no
    lorastudy on their own: a stand-in on their path that raises when imported shadows any
    installed one (an editable install of this checkout, say)."""
    stub = tmp_path / "no-checkout" / "lorastudy"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text(f"raise ImportError({REFUSED!r})\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(stub.parent), "RAY_raylet_start_wait_time_s": "120", **NO_TOKEN}
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD], cwd=elsewhere, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        address = head.stdout.readline().strip()
        assert address, "the Ray instance did not start"
        yield address, stub.parent
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.terminate()
            head.wait(timeout=30)


def test_ray_workers_without_the_checkout_run_the_package_shipped_with_the_job(
    head_without_checkout, tmp_path_factory, tiny_model
):
    address, stub = head_without_checkout
    # The stand-in refuses itself: without the shipped package a step's kernel would fail so.
    refused = subprocess.run(
        [sys.executable, "-c", "import lorastudy"], env={**os.environ, "PYTHONPATH": str(stub)}, capture_output=True
    )
    assert refused.returncode != 0 and REFUSED in refused.stderr.decode()
    root = new_root(tmp_path_factory, tiny_model, "shipped")
    small = [*SHRUNK, "-p", "methods=[base]", "-p", "tasks.arc_challenge.n=10", "-p", "tasks.squad.n=10"]
    result, _ = lorastudy_run(SMOKE, root, *small, "--executor", "ray", "--address", address, env=NO_TOKEN)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "the steps run lorastudy" in result.stdout and "shipped with the job" in result.stdout
    assert sorted(records(root)) == ["01_data", "03_evaluate-base", "04_report"]
    assert (root / "rendered" / "smoke.html").is_file() and (root / "rendered" / "smoke.md").is_file()
