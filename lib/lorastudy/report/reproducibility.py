"""The report's provenance: what ran (the params, the steps and their identities, the inputs,
the libraries) and where the time went."""

from __future__ import annotations

import html
import importlib.metadata
import platform
import subprocess
import time
from pathlib import Path

import yaml

from .. import __version__, tasks
from ..results.tables import StudyResults
from ..study.schema import params_hash
from ..util.package_data import checkout
from .markdown import code, escape, table

LIBRARIES = [
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "papermill",
    "nbconvert",
    "scipy",
    "pandas",
    "seaborn",
]


def input_rows(summary: dict) -> list[list[str]]:
    """What the model and each dataset resolved to, as the data step recorded it."""

    def resolved(info: dict | None) -> str:
        if not info:
            return "not recorded"
        text = f"`{escape(info['resolved'])}`" if info.get("resolved") else "not resolved"
        requested = f"{escape(info['requested'])} → " if info.get("requested") else ""
        return f"{requested}{text} ({escape(info['kind'])})"

    rows = [["model", f"{escape((summary.get('model') or {}).get('name', ''))}: {resolved(summary.get('model'))}"]]
    for name, info in summary["datasets"].items():
        title = info.get("title") or (tasks.get(name).title if name in tasks.TASKS else escape(name))
        rows.append([f"data: {title}", resolved(info.get("revision"))])
    return rows


def provenance(res: StudyResults, params_file: str, overrides: dict, chain: list[dict]) -> str:
    """How to reproduce the report and what it was built from: `chain` is the recorded run of
    every step, the report's own last (pipeline.recorded_chain)."""
    cfg = res.cfg
    resolved = cfg.resolved()
    commit = git_commit(checkout())
    # lorastudy's own version from the code that ran: its installed metadata may be another
    # checkout's (an editable install elsewhere, with this one on PYTHONPATH).
    versions = [f"lorastudy {__version__}"]
    for lib in LIBRARIES:
        try:
            versions.append(f"{lib} {importlib.metadata.version(lib)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{lib} not installed")
    devices = sorted({e["device"] for e in res.evals.values()} | {t["device"] for t in res.train.values()})
    shown = Path(params_file)
    for base in filter(None, (checkout(), Path(cfg.root).resolve())):  # a path a reader can use in their own checkout
        if Path(params_file).resolve().is_relative_to(base):
            shown = Path(params_file).resolve().relative_to(base)
            break
    command = "lorastudy run " + str(shown) + "".join(f" -p {k}={v}" for k, v in overrides.items())
    params_yaml = yaml.safe_dump(resolved, sort_keys=False)
    return "\n".join(
        [
            "## Provenance",
            "",
            table(
                ["", ""],
                [
                    ["reproduce with", code(command)],
                    ["parameters hash", f"`{params_hash(resolved)}`"],
                    ["git commit", escape(commit)],
                    *input_rows(res.data_summary),
                    ["device", "; ".join(escape(d) for d in devices)],
                    ["Python", escape(platform.python_version())],
                    ["libraries", escape(", ".join(versions))],
                    ["report generated", time.strftime("%Y-%m-%d %H:%M:%S %Z")],
                ],
                ["l", "l"],
            ),
            "",
            steps_table(chain),
            "",
            "Resolved parameters:",
            "",
            "<pre>" + html.escape(params_yaml) + "</pre>",
        ]
    )


def git_commit(source: Path | None) -> str:
    """The commit of the code that computed the results: the checkout lorastudy runs from, which
    need not hold the study's folder (--root elsewhere). An installed package has none: its
    version, in the libraries, names the code."""
    if source is None:
        return f"none: lorastudy {__version__} installed as a package"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=source, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return commit + (" (with uncommitted changes)" if dirty else "")


def steps_table(chain: list[dict]) -> str:
    """The run of each step this report was built from, so a reader can follow one chain:
    every run a step was built from is a row above it. Its start and end show which steps ran
    at the same time (an executor such as Ray runs independent steps at once), and where
    steps ran on several machines, which ran where."""
    *steps, report = chain

    def short(run_id: str) -> str:
        return f"`{run_id[:8]}`"

    def built_from(row: dict) -> str:
        return "; ".join(f"{name} {short(run)}" for name, run in row["inputs"].items()) or "no other step"

    hosts = {row.get("host") for row in steps}
    where = len(hosts) > 1
    rows = [
        [
            row["step"],
            short(row["identity"]),
            short(row["run"]),
            built_from(row),
            _when(row.get("started")),
            _when(row["finished"]),
        ]
        + ([escape(row.get("host") or "not recorded")] if where else [])
        for row in steps
    ]
    header = ["step", "identity", "run", "built from", "started", "finished"] + (["ran on"] if where else [])
    return "\n".join(
        [
            f"This report is step {report['step']}, identity {short(report['identity'])}, built from the runs of "
            f"the {len(steps)} steps below; each of them was built from the runs listed beside it. A step's "
            "identity is a hash of its parameters, its code (its notebook and the package code that the "
            "notebook reaches), its tasks' versions and the runs it was built from; a step is redone when "
            "its identity changes, and a redone step has a new run. Steps whose times overlap ran at the same "
            "time.",
            "",
            table(header, rows, ["l"] * len(header)),
            "",
            time_by_step(steps),
        ]
    )


def time_by_step(steps: list[dict]) -> str:
    """Where each step's time went, each in its own process: starting the kernel, imports and
    setup, the step's work, stopping the kernel (from the executed notebooks), and whether its
    kernel was started ahead, with its imports, while the step before ran."""
    keys = ["kernel_start_s", "imports_s", "work_s", "kernel_stop_s", "wall_s"]
    timed = [row for row in steps if row.get("timing")]
    if not timed:
        return "The steps' records hold no timing (they were run by an older lorastudy)."
    ahead = {True: "yes", False: "no"}
    rows = [
        [row["step"]]
        + [f"{row['timing'].get(k, float('nan')):,.1f}" for k in keys]
        + [ahead.get(row["timing"].get("kernel_ahead"), "not recorded")]
        for row in timed
    ]
    total = [sum(row["timing"].get(k, 0.0) for row in timed) for k in keys]
    rows.append(["all steps above"] + [f"{t:,.1f}" for t in total] + [""])
    return "\n".join(
        [
            "Time by step, in seconds (each step runs in its own kernel, so each peak memory is its own):",
            "",
            table(["step", "kernel start", "imports and setup", "work", "kernel stop", "wall", "kernel ahead"], rows),
            "",
            "A kernel started ahead was started, and did the step's imports, while the step before it ran "
            "(when that step's own kernel was still importing; not beside a step's work, which it would "
            "slow): its step waited for what was left of them in its kernel start. This report's own step "
            "and the rendering are timed in `results/steps.csv`, written once the report is rendered.",
        ]
    )


def _when(iso: str | None) -> str:
    """A recorded UTC time (ISO 8601) to the second, for reading."""
    return iso[:19].replace("T", " ") + " UTC" if iso else "not recorded"
