"""The report's opening and its data section say what a study of its own data trained and was
evaluated on: so many rows of its file, and synthetic data only where a task reads it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorastudy.data.datasets import prepare
from lorastudy.report.step_summaries import data_section
from lorastudy.report.summary import model_section, title
from lorastudy.results.recorded import StudyResults
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import runs_of

SYNTHETIC = "The data are synthetic, in the real datasets' schemas"


def opening(root: Path, model: str, tasks: str = "") -> tuple[str, str]:
    """The title, the section on the model (with its full note) and the data section, of a study
    trained on a chat file."""
    turns = [
        ({"role": "user", "content": f"What is {i} plus 1?"}, {"role": "assistant", "content": str(i + 1)})
        for i in range(14)
    ]
    rows = [{"messages": list(t)} for t in turns]
    (root / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = root / "own.yaml"
    params.write_text(
        f"study: own\nmethods: [base, lora, qlora]\nmodel: {{name: {model}}}\n"
        f"data:\n  train_samples: 8\n  train: {{path: chat.jsonl, format: messages, held_out: 4}}\n{tasks}"
    )
    cfg = load_config(params, root=root)
    paths = StudyPaths(root, cfg.study)
    summary = prepare(cfg, paths.data, log=lambda _: None)
    runs = runs_of(cfg)
    items = {(r.name, t.name): [{}] * (t.n or 3) for r in runs for t in cfg.tasks}
    res = StudyResults(cfg, paths, runs, {}, {}, items, summary)
    return title(res) + "\n" + model_section(res), data_section(summary)


@pytest.mark.parametrize("model", ["builtin:smollm2-135m-instruct", "builtin:tiny-qwen3"])
def test_a_study_of_its_own_file_says_it_trained_on_its_rows_and_no_synthetic_data(tmp_path, model):
    head, data = opening(tmp_path, model)
    assert "fine-tuned on 8 rows of <code>chat\\.jsonl</code> (messages format) with LoRA and QLoRA" in head
    assert "training items" not in head and SYNTHETIC not in head and "synthetic data" not in head
    assert "Training rows from <code>chat\\.jsonl</code> (messages format" in data
    assert "synthetic" not in data and "OpenMath" not in data


def test_a_built_in_task_beside_it_reads_the_synthetic_data_and_says_so(tmp_path):
    head, data = opening(tmp_path, "builtin:smollm2-135m-instruct", "tasks: {openmath: {n: 3}}\n")
    assert "fine-tuned on 8 rows of <code>chat\\.jsonl</code>" in head and SYNTHETIC in head
    assert "; OpenMath \\(held out\\): synthetic data." in data and "OpenMath evaluation keeps problems" in data
