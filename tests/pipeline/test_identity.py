"""A step's identity from the runs it consumed, the records the runner writes, and the
report's check that the recorded steps form one chain. No notebook runs here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_outputs

from lorastudy import pipeline
from lorastudy.pipeline.records import _changed
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.schema import params_hash
from lorastudy.util.files import atomic_write_json

ROOT = Path(__file__).resolve().parents[2]


def finish(paths: StudyPaths, step: pipeline.Step, records: dict, run: str, finished: str) -> None:
    """Record a step as the runner does when it finishes, with its outputs in place."""
    step_identity, consumed = pipeline.identity(step, records)
    write_outputs(step)
    record = {"step": step.id, "identity": step_identity, "run": run, "inputs": consumed, "params": step.params}
    record |= {"code": {"hash": step.code.hash, "parts": step.code.parts}, "tasks": step.task_code}
    record |= {"started": finished, "finished": finished}
    atomic_write_json(paths.steps / f"{step.id}.json", record)
    records[step.id] = record


@pytest.fixture
def recorded(tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", {"methods": ["base", "lora"]}, root=tmp_path)
    paths = StudyPaths(tmp_path, cfg.study)
    steps = pipeline.plan(cfg, paths)
    records: dict = {}
    for number, step in enumerate(steps[:-1]):
        finish(paths, step, records, f"run{number:013d}", f"2026-01-01T00:00:0{number}.000+00:00")
    return cfg, paths, {s.id: s for s in steps}, records


def test_a_redone_step_changes_the_identity_of_everything_downstream(recorded):
    cfg, paths, steps, records = recorded
    before = {name: pipeline.identity(step, records)[0] for name, step in steps.items()}
    finish(paths, steps["02_train-lora"], records, "another-run-of-it", "2026-01-01T00:01:00.000+00:00")
    after = {name: pipeline.identity(step, records)[0] for name, step in steps.items()}
    assert {n for n in steps if before[n] != after[n]} == {"03_evaluate-lora", "04_report"}
    assert pipeline.why_not_done(steps["03_evaluate-lora"], records) == "02_train-lora was redone since"


def test_the_step_plan_holds_no_path_of_the_checkout(tmp_path):
    a = pipeline.plan(*_study(tmp_path / "a"))
    b = pipeline.plan(*_study(tmp_path / "b"))
    assert [s.params for s in a] == [s.params for s in b] and [s.code.hash for s in a] == [s.code.hash for s in b]
    assert str(tmp_path) not in json.dumps([s.params for s in a])


def _study(root: Path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", root=root)
    return cfg, StudyPaths(root, cfg.study)


def test_the_parameters_hash_is_the_same_in_any_checkout(tmp_path):
    a, _ = _study(tmp_path / "a")
    b, _ = _study(tmp_path / "elsewhere" / "b")
    assert a.root != b.root and params_hash(a.resolved()) == params_hash(b.resolved())
    assert params_hash(a.resolved()) != params_hash(_study_with(tmp_path, {"lora.r": 8}).resolved())


def _study_with(root: Path, overrides: dict):
    return load_config(ROOT / "params" / "smoke.yaml", overrides, root=root)


def test_the_report_refuses_records_that_are_not_one_chain(recorded):
    cfg, paths, steps, records = recorded
    chain = pipeline.recorded_chain(cfg, paths)
    assert [row["step"] for row in chain] == list(steps)
    assert chain[-1]["inputs"] == {name: records[name]["run"] for name in list(steps)[:-1]}
    # 01_data redone, and nothing after it: every later step was built from the old data.
    finish(paths, steps["01_data"], records, "new-data-run", "2026-01-01T00:02:00.000+00:00")
    with pytest.raises(pipeline.InconsistentRuns) as info:
        pipeline.recorded_chain(cfg, paths)
    message = str(info.value)
    for name in ("02_train-lora", "03_evaluate-base", "03_evaluate-lora"):
        assert f"{name}: " in message and "01_data was redone since" in message
    # A record missing (a step stopped half-way) is named too.
    (paths.steps / "03_evaluate-base.json").unlink()
    (paths.steps / "02_train-lora.json").unlink()
    with pytest.raises(pipeline.InconsistentRuns) as info:
        pipeline.recorded_chain(cfg, paths)
    assert "03_evaluate-base: no record of a finished run" in str(info.value)
    assert "03_evaluate-lora: no record of 02_train-lora, which it was built from" in str(info.value)


def test_a_rerun_says_what_changed(recorded):
    _, paths, steps, records = recorded
    evaluation = steps["03_evaluate-base"]
    # Read back from its file, where tuples are lists: nothing differs but the record's origin.
    on_disk = pipeline.read_records(paths)
    assert pipeline.why_not_done(evaluation, on_disk) == "its record was written by another version of lorastudy"
    old = on_disk[evaluation.id]
    old["code"] = {"hash": "older", "parts": {**old["code"]["parts"], "metrics.squad_f1": "older"}}
    old["params"]["eval"]["batch_size"] += 1
    assert pipeline.why_not_done(evaluation, on_disk) == (
        "parameters changed: eval.batch_size; code changed: metrics.squad_f1"
    )


def test_editing_a_local_data_file_redoes_the_data_step(tmp_path):
    from lorastudy.tasks import synthetic
    from lorastudy.util.files import write_jsonl

    data = tmp_path / "data"
    write_jsonl(data / "openmath.jsonl", synthetic.openmath_rows(12, 0))
    write_jsonl(data / "squad.jsonl", synthetic.squad_rows(4, 0))
    overrides = {"data.source": "local", "data.local_dir": "data", "tasks": {"squad": {"n": 4}}}
    cfg = load_config(ROOT / "params" / "smoke.yaml", overrides, root=tmp_path)
    paths = StudyPaths(tmp_path, cfg.study)
    before = pipeline.plan(cfg, paths)[0]
    assert set(before.params["local_files"]) == {"openmath", "squad"}
    write_jsonl(data / "squad.jsonl", synthetic.squad_rows(4, 1))
    after = pipeline.plan(cfg, paths)[0]
    assert pipeline.identity(before, {})[0] != pipeline.identity(after, {})[0]
    assert _changed(before.params, after.params) == ["local_files.squad"]
