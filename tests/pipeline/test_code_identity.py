"""The identity of the code a step runs, derived from the source: what changes it and what
does not, on an edited copy of the package and notebooks."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from lorastudy import tasks
from lorastudy.pipeline.code_identity import code_identity, module_file, task_identity
from lorastudy.pipeline.steps import TASK_FIELDS

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_data", "02_train", "03_evaluate", "04_report"]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the package and the notebooks, to edit."""
    shutil.copytree(ROOT / "lib" / "lorastudy", tmp_path / "lib" / "lorastudy")
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    return tmp_path


def identities(checkout: Path) -> dict[str, tuple]:
    """Each step's code: its notebook and the package code it reaches, and the parts of every
    task's declaration that its kind of step runs."""
    package = checkout / "lib" / "lorastudy"
    return {
        name: (
            code_identity(checkout / "notebooks" / f"{name}.ipynb", package).hash,
            {t: task_identity(t, TASK_FIELDS[f"{name}.ipynb"], package) for t in tasks.TASKS.names()},
        )
        for name in NOTEBOOKS
    }


def edit(checkout: Path, module: str, old: str, new: str) -> None:
    path = module_file(checkout / "lib" / "lorastudy", module)
    text = path.read_text()
    assert old in text, f"{module}.py no longer holds {old!r}"
    path.write_text(text.replace(old, new, 1))


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {name for name in before if before[name] != after[name]}


def test_changing_a_scorer_changes_evaluation_not_data_training_or_report_code(checkout):
    before = identities(checkout)
    edit(checkout, "tasks.metrics", "def squad_f1(", "def squad_f1_official(")
    (checkout / "lib" / "lorastudy" / "tasks" / "metrics.py").open("a").write(
        "\n\ndef squad_f1(prediction, references):\n    return 0.5 * squad_f1_official(prediction, references)\n"
    )
    after = identities(checkout)
    assert changed(before, after) == {"03_evaluate"}
    # Only SQuAD's part of the evaluation changed; the report is redone too, because the
    # evaluations it reads are redone (test_consistency).
    assert {t for t in tasks.TASKS.names() if before["03_evaluate"][1][t] != after["03_evaluate"][1][t]} == {"squad"}


def test_changing_the_training_tasks_scorer_does_not_redo_training(checkout):
    before = identities(checkout)
    edit(checkout, "tasks.openmath", '"no_answer_rate": float(answer.value is None),', '"no_answer_rate": 0.0,')
    assert changed(before, identities(checkout)) == {"03_evaluate"}


def test_changing_the_report_code_changes_only_the_report(checkout):
    before = identities(checkout)
    edit(checkout, "report.reproducibility", '"## Provenance",', '"## Where this report comes from",')
    assert changed(before, identities(checkout)) == {"04_report"}


def test_changing_the_chat_prompt_changes_data_training_and_evaluation(checkout):
    # Evaluation prompts the trained model as training did (tasks.chat_prompt, the task's prompt).
    before = identities(checkout)
    edit(checkout, "tasks.declaration", "def chat_prompt(", "def chat_prompt(*_unused, ")
    # The data step too: it records the training examples' lengths in the model's chat format.
    assert changed(before, identities(checkout)) == {"01_data", "02_train", "03_evaluate"}


def test_comments_formatting_and_notebook_outputs_change_nothing(checkout):
    before = identities(checkout)
    metrics = checkout / "lib" / "lorastudy" / "tasks" / "metrics.py"
    metrics.write_text(metrics.read_text().replace("\n\n\ndef ", "\n\n\n# a comment\ndef ") + "\n# trailing\n")
    notebook = checkout / "notebooks" / "02_train.ipynb"
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
            cell["execution_count"] = 7
    nb["metadata"]["something"] = "else"
    notebook.write_text(json.dumps(nb))
    assert changed(before, identities(checkout)) == set()


def test_a_notebook_cell_change_changes_its_step_only(checkout):
    before = identities(checkout)
    notebook = checkout / "notebooks" / "02_train.ipynb"
    nb = json.loads(notebook.read_text())
    nb["cells"][-1]["source"] = ["show(train_summary(record))\n", "print(record['final_loss'])\n"]
    notebook.write_text(json.dumps(nb))
    assert changed(before, identities(checkout)) == {"02_train"}


def test_code_reached_through_a_registry_or_an_import_inside_a_function_counts(tmp_path):
    package = tmp_path / "lib" / "lorastudy"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "registry.py").write_text(
        textwrap.dedent("""
        SCORERS = {}

        def scorer(name):
            def register(fn):
                SCORERS[name] = fn
                return fn
            return register

        @scorer("exact")
        def exact(a, b):
            return float(a == b)

        def score(name, a, b):
            from .helpers import clean
            return SCORERS[name](clean(a), clean(b))
        """)
    )
    (package / "helpers.py").write_text("def clean(s):\n    return s.strip()\n\ndef unused():\n    return 1\n")
    notebook = tmp_path / "step.ipynb"
    cells = [{"cell_type": "code", "source": "from lorastudy import registry\nregistry.score('exact', 'a', 'a')"}]
    notebook.write_text(json.dumps({"cells": cells}))

    def ident() -> str:
        return code_identity(notebook, package).hash

    first = ident()
    parts = code_identity(notebook, package).parts
    assert {"registry.score", "registry.SCORERS", "helpers.clean"} <= set(parts) and "helpers.unused" not in parts
    (package / "helpers.py").write_text("def clean(s):\n    return s.strip()\n\ndef unused():\n    return 2\n")
    assert ident() == first  # not reached
    registry = package / "registry.py"
    registry.write_text(registry.read_text().replace("float(a == b)", "float(a.lower() == b.lower())"))
    assert ident() != first  # reached only through the decorator that registers it
    second = ident()
    (package / "helpers.py").write_text("def clean(s):\n    return s\n\ndef unused():\n    return 2\n")
    assert ident() != second  # reached only through an import inside a function


def test_an_import_that_is_not_followed_is_refused_rather_than_missed(tmp_path):
    package = tmp_path / "lorastudy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text("def run():\n    import lorastudy.helpers\n    return lorastudy.helpers.go()\n")
    notebook = tmp_path / "step.ipynb"
    notebook.write_text(
        json.dumps({"cells": [{"cell_type": "code", "source": "from lorastudy.steps import run\nrun()"}]})
    )
    with pytest.raises(ValueError, match="write `from lorastudy import ...`"):
        code_identity(notebook, package)
