#!/usr/bin/env python
"""A study's wall time with kernels started ahead, against papermill starting each step's kernel.

The same study runs from scratch (`--force`) through lorastudy.pipeline.run_study with the
local executor, both ways, one run after the other:
  - peer: each step's notebook executed by papermill in a kernel papermill starts when the step
    starts (what the Ray executor's tasks do, and the local executor did before kernels.py);
  - lorastudy: the local executor's kernels, each started with its step's imports, the next
    step's started while a step's own kernel is still importing (kernels.py).
For each run it prints the total (planning, every step and the rendering, as `lorastudy run`
reports it), each step's kernel start, imports, work and wall from results/steps.csv, the load
average before and after, the share of CPU time that the host of a virtual machine took for
others meanwhile (steal), and the machine's float32 matmul speed before and after (a 1024 x
1024 probe, GFLOP/s), since steal does not show all of a shared host's drift. `--repeat N` runs
each N times, interleaved, and compares the medians: this project's machine, a virtual one, ran
the same smoke study in 62 to 73 s within an hour.
Targets on a quiet 2-core machine: the smoke study in at most 50 s; the 3-seed SmolLM2 study
(params/smollm2-135m.yaml, about 16 minutes a run) in at most 15 minutes. `--only lorastudy`
skips the peer.

    python benchmarks/study_time.py params/smoke.yaml --json runs/benchmarks/study-time-smoke.json
"""

from __future__ import annotations

import csv
import statistics
import sys
import time
from contextlib import redirect_stdout

from common import (
    ROOT,
    cpu_times,
    emit,
    load_average,
    load_study,
    log,
    matmul_gflops,
    steal_share,
    study_parser,
    versions,
)

from lorastudy.pipeline import executors, run_study  # noqa: E402
from lorastudy.pipeline.execution import StepFailed, execute  # noqa: E402

TARGETS_S = {"smoke": 50.0, "smollm2-135m": 15 * 60.0}


class PapermillStarts(executors.LocalExecutor):
    """The local executor without kernels started ahead: papermill starts each step's kernel."""

    def start(self, step, study, step_identity, consumed):
        try:
            self.finished[step.id] = executors.Outcome(wall_s=execute(step, self.paths, study, step_identity, consumed))
        except StepFailed as exc:
            self.finished[step.id] = executors.Outcome(error=exc)
        return step.id


def timed_run(args, study: str, executor_class) -> dict:
    local = executors.LocalExecutor
    executors.LocalExecutor = executor_class  # open_executor builds the local executor by this name
    speed_before, load_before, cpu_before = matmul_gflops(), load_average(), cpu_times()
    start = time.perf_counter()
    try:
        with redirect_stdout(sys.stderr):  # the steps' output, which papermill sends to stdout: the JSON's
            run_study(args.params, args.overrides, root=ROOT, force=True, log=log)
    finally:
        executors.LocalExecutor = local
    total_s = time.perf_counter() - start
    with open(ROOT / "runs" / study / "results" / "steps.csv") as f:
        rows = list(csv.DictReader(f))
    fields = ("kernel_start_s", "imports_s", "work_s", "wall_s")
    steps = {
        r["step"]: {**{k: float(r[k]) for k in fields if r.get(k)}, "kernel_ahead": r["kernel_ahead"] == "true"}
        for r in rows
        if r["step"] != "render"
    }
    return {
        "total_s": total_s,
        "steps": steps,
        "kernel_start_and_imports_s": sum(r["kernel_start_s"] + r["imports_s"] for r in steps.values()),
        "work_s": sum(r["work_s"] for r in steps.values()),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "cpu_steal_share": steal_share(cpu_before, cpu_times()),
        "matmul_gflops_before": speed_before,
        "matmul_gflops_after": matmul_gflops(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["lorastudy"], help="run only lorastudy's executor, not the peer")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, interleaved (default 1)")
    args = parser.parse_args(argv)
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    if args.repeat < 1:
        problems.append("--repeat: must be at least 1")
    if problems:
        parser.error("; ".join(problems))
    runs: dict[str, list[dict]] = {"lorastudy": []} if args.only else {"peer": [], "lorastudy": []}
    for n in range(args.repeat):
        # Interleaved, so that a machine whose speed drifts (a shared host) slows both alike.
        for name, executor in (("peer", PapermillStarts), ("lorastudy", executors.LocalExecutor)):
            if name in runs:
                log(
                    f"{name}, run {n + 1} of {args.repeat}: "
                    + ("kernels started ahead" if name == "lorastudy" else "papermill starts each kernel")
                )
                runs[name].append(timed_run(args, cfg.study, executor))
    result = {"benchmark": "study_time", "study": cfg.study, "target_s": TARGETS_S.get(cfg.study), "runs": runs}
    medians = {name: statistics.median(r["total_s"] for r in done) for name, done in runs.items()}
    result["median_total_s"] = medians
    if "peer" in medians:
        result["time_ratio"] = medians["lorastudy"] / medians["peer"]
    if result["target_s"] is not None:
        result["meets_target"] = medians["lorastudy"] <= result["target_s"]
    result["versions"] = versions("torch", "transformers", "papermill", "nbclient", "jupyter_client", "ipykernel")
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
