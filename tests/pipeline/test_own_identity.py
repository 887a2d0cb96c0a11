"""The identity of a study's steps covers the files its params name: data.train's file, and each
lm-eval task's YAML, what it includes, its functions and its data files. Editing any of them redoes
the steps that read it; the rest stays done."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorastudy import pipeline
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths

pytestmark = pytest.mark.lm_eval

ROOT = Path(__file__).resolve().parents[2]


# The steps that read an lm-eval task's YAML: the data step samples its documents, each evaluation
# runs it, the report reads its metrics' declarations.
YAML_READERS = {"01_data", "03_evaluate-base", "03_evaluate-lora", "03_evaluate-qlora", "04_report"}


def identities(root: Path) -> dict[str, dict]:
    """Each step's parameters and task code, as the plan computes them from the files now."""
    cfg = load_config(root / "params" / "your-data.yaml", root=root)
    steps = pipeline.plan(cfg, StudyPaths(root, cfg.study))
    return {s.id: {"params": s.params, "tasks": s.task_code} for s in steps}


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The example study and its files, where the test can edit them."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "params").mkdir()
    shutil.copy(ROOT / "params" / "your-data.yaml", tmp_path / "params")
    return tmp_path


def changed(before: dict, after: dict) -> set[str]:
    return {step for step in before if before[step] != after[step]}


@pytest.mark.parametrize(
    "edited, redone",
    [
        ("chat.jsonl", {"01_data"}),
        ("lm_eval/arithmetic_gen.jsonl", YAML_READERS),
        ("lm_eval/arithmetic_gen.yaml", YAML_READERS),
        ("lm_eval/_arithmetic.yaml", YAML_READERS),
    ],
)
def test_editing_a_file_the_params_name_changes_the_steps_that_read_it(checkout, edited, redone):
    before = identities(checkout)
    path = checkout / "examples" / edited
    path.write_text(
        path.read_text() + ("\n# edited\n" if path.suffix == ".yaml" else path.read_text().splitlines()[0] + "\n")
    )
    assert changed(before, identities(checkout)) == redone
    # The steps downstream of the data step are redone through its new run id (records), not here.


def test_a_function_file_the_yaml_names_is_part_of_its_identity(checkout):
    folder = checkout / "examples" / "lm_eval"
    (folder / "scoring.py").write_text("def process_results(doc, results):\n    return {'exact_match': 1.0}\n")
    yaml = folder / "arithmetic_gen.yaml"
    yaml.write_text(
        yaml.read_text().replace("filter_list:", "process_results: !function scoring.process_results\nfilter_list:")
    )
    before = identities(checkout)
    (folder / "scoring.py").write_text("def process_results(doc, results):\n    return {'exact_match': 0.0}\n")
    assert changed(before, identities(checkout)) == YAML_READERS
