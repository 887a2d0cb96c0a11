"""The records finished steps leave (runs/<study>/steps/<step>.json): a step's identity, whether
it is done, why not, and the chain of runs a report is built from."""

from __future__ import annotations

import json
from typing import Any

from ..study.paths import StudyPaths
from ..study.schema import StudyConfig, params_hash
from ..util.files import read_json
from .steps import REPORT, Step, plan


class InconsistentRuns(RuntimeError):
    """The recorded steps are not one chain: a report built from them would mix runs."""


def read_records(paths: StudyPaths) -> dict[str, dict]:
    """Each finished step's record, by step id (an unreadable record counts as none)."""
    records = {}
    for path in sorted(paths.steps.glob("*.json")) if paths.steps.is_dir() else []:
        try:
            record = read_json(path)
        except ValueError:
            continue
        if isinstance(record, dict) and {"identity", "run"} <= set(record):
            records[path.stem] = record
    return records


def identity(step: Step, records: dict[str, dict]) -> tuple[str | None, dict[str, str]]:
    """The step's identity given the recorded runs of its inputs, and those run ids; no
    identity while an input has no record (it has to run first)."""
    consumed = {}
    for name in step.inputs:
        if name not in records:
            return None, {}
        consumed[name] = records[name]["run"]
    whole = {
        "step": step.id,
        "params": step.params,
        "code": step.code.hash,
        "tasks": step.task_code,
        "inputs": consumed,
    }
    return params_hash(whole), consumed


def is_done(step: Step, record: dict | None, step_identity: str | None) -> bool:
    return (
        record is not None
        and step_identity is not None
        and record.get("identity") == step_identity
        and all(p.exists() for p in step.outputs)
    )


def why_not_done(step: Step, records: dict[str, dict]) -> str:
    """What differs between a step's record and what it would consume now, in words."""
    record = records.get(step.id)
    if record is None:
        return "no record of a finished run"
    unrecorded = [name for name in step.inputs if name not in records]
    if unrecorded:
        return f"no record of {_some(unrecorded)}, which it was built from"
    consumed = {name: records[name]["run"] for name in step.inputs}
    missing = [p.name for p in step.outputs if not p.exists()]
    if missing:
        return "outputs missing: " + ", ".join(missing)
    reasons = []
    changed = _changed(_as_json(record.get("params")), _as_json(step.params))
    if changed:
        reasons.append("parameters changed: " + _some(changed))
    if record.get("code", {}).get("hash") != step.code.hash:
        reasons.append("code changed: " + _some(_changed(record.get("code", {}).get("parts"), step.code.parts)))
    if record.get("tasks") != step.task_code:
        reasons.append("task declarations changed: " + _some(_changed(record.get("tasks"), step.task_code)))
    redone = [name for name, run in consumed.items() if record.get("inputs", {}).get(name) != run]
    if redone:
        reasons.append(_some(redone) + (" was" if len(redone) == 1 else " were") + " redone since")
    return "; ".join(reasons) or "its record was written by another version of lorastudy"


def _as_json(obj: Any) -> Any:
    """As a record holds it once written: tuples are lists."""
    return json.loads(json.dumps(obj, default=str))


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [k for key in keys for k in _changed(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [prefix.rstrip(".") or "all"] if old != new else []


def _some(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def recorded_chain(cfg: StudyConfig, paths: StudyPaths) -> list[dict]:
    """The runs a report of this study is built from, one row per step (the report last,
    with its identity), after checking that every step before the report is done for what
    it would consume now. Raises InconsistentRuns naming each step that is not."""
    steps = plan(cfg, paths)
    records = read_records(paths)
    rows, problems = [], []
    for step in steps:
        step_identity, consumed = identity(step, records)
        record = records.get(step.id)
        if step.id != REPORT and not is_done(step, record, step_identity):
            problems.append(f"{step.id}: {why_not_done(step, records)}")
            continue
        times = {key: record.get(key) if step.id != REPORT else None for key in ("started", "finished", "host")}
        run = record["run"] if step.id != REPORT else None
        timing = record.get("timing") if step.id != REPORT else None
        rows.append(
            {"step": step.id, "identity": step_identity, "run": run, "inputs": consumed, **times, "timing": timing}
        )
    if problems:
        raise InconsistentRuns(
            "the recorded steps are not one consistent run, so no report is built from them "
            "(run `lorastudy run` to redo what is out of date):\n" + "\n".join(problems)
        )
    return rows
