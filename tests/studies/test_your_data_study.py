"""End to end: a study of your own data and your own tasks (params/your-data.yaml) through
`lorastudy run`: the adapters train on a chat-format file, every method is scored on its held-out
rows and on two lm-evaluation-harness task files, and the report gives those tasks' scores,
intervals, paired comparisons and verdicts. Run here on the tiny model, with fewer items."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from lorastudy.util.files import read_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.lm_eval]

ROOT = Path(__file__).resolve().parents[2]
OVERRIDES = [
    "model.name=builtin:tiny-qwen3",
    "data.train.held_out=24",
    "data.train.max_new_tokens=16",
    "train.epochs=1",
    "train.batch_size=16",
    "train.learning_rate=4e-3",
    "tasks.arithmetic_mc.n=24",
    "tasks.arithmetic_gen.n=24",
    "eval.latency_items=2",
]
TASKS = {
    "held_out": ["nll_per_token", "exact_match"],
    "arithmetic_mc": ["acc", "acc_norm"],
    "arithmetic_gen": ["exact_match"],
}


@pytest.fixture(scope="module")
def your_data(tmp_path_factory, study_folder, run_study):
    root = study_folder(tmp_path_factory.mktemp("your-data"))
    shutil.copytree(ROOT / "examples", root / "examples")  # the params name them relative to the root
    args = [a for o in OVERRIDES for a in ("-p", o)]
    start = time.perf_counter()
    result = run_study(ROOT / "params" / "your-data.yaml", root, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"your-data study on the tiny model: {time.perf_counter() - start:.1f} s")
    return root, args


def test_every_method_gets_each_tasks_scores_with_intervals(your_data):
    root, _ = your_data
    metrics = pd.read_csv(root / "runs" / "your-data" / "results" / "metrics.csv")
    for method in ("base", "lora", "qlora"):
        for task, names in TASKS.items():
            rows = metrics[(metrics.method == method) & (metrics.task == task)]
            assert list(rows.metric) == names, (method, task)
            assert (rows.n == 24).all() and (rows.ci_low <= rows.value).all() and (rows.value <= rows.ci_high).all()
    nll = metrics[metrics.metric == "nll_per_token"].set_index("method")
    assert not nll.higher_is_better.any() and (nll.value > 0).all() and not nll.is_fraction.any()
    # Fine-tuning on the same conversations makes their held-out replies likelier.
    assert nll.value["lora"] < nll.value["base"] and nll.value["qlora"] < nll.value["base"]


def test_the_comparisons_are_paired_and_tested_on_every_task(your_data):
    root, _ = your_data
    comparisons = pd.read_csv(root / "runs" / "your-data" / "results" / "comparisons.csv")
    pairs = {("lora", "base"), ("qlora", "base"), ("qlora", "lora")}
    for task, names in TASKS.items():
        rows = comparisons[comparisons.task == task]
        assert set(zip(rows.method_a, rows.method_b, rows.metric)) == {(a, b, m) for a, b in pairs for m in names}
        assert rows.p_value.between(0, 1).all() and rows.p_holm.between(0, 1).all()
    tests = comparisons.set_index(["task", "metric"]).test
    assert set(tests.loc[("held_out", "nll_per_token")]) == {"paired_permutation"}
    assert set(tests.loc[("arithmetic_mc", "acc")]) == {"mcnemar_exact"}


def test_the_report_shows_the_tasks_their_verdicts_and_the_data(your_data):
    root, _ = your_data
    md = (root / "rendered" / "your-data.md").read_text()
    for title in ("chat.jsonl (held out)", "arithmetic\\_mc (lm-eval)", "arithmetic\\_gen (lm-eval)"):
        assert title in md or title.replace("\\", "") in md, title
    assert "Executive summary" in md and ("nll\\_per\\_token" in md or "nll_per_token" in md)
    # What the study trained on, in words; no warning a library printed, no synthetic data it does not have.
    assert "fine-tuned on 200 rows of <code>examples/chat\\.jsonl</code> (messages format)" in md
    assert "Warning:" not in md.split("## Executive summary")[0] and "synthetic data" not in md
    summary = md.split("## Executive summary", 1)[1].split("## ", 1)[0]
    assert summary.count("no detectable difference") + summary.count("better") + summary.count("worse") >= 9
    assert "duplicate item: 3" in md  # the example file's three repeated conversations, dropped and counted
    generation = pd.read_csv(root / "runs" / "your-data" / "results" / "generation.csv")
    assert set(generation.task) == {"held_out", "arithmetic_gen"} and (generation.outputs == 24).all()
    items = read_jsonl(root / "runs" / "your-data" / "predictions" / "qlora" / "arithmetic_mc.jsonl")
    assert len(items) == 24 and all(
        len(it["loglikelihoods"]) == 4 and it["output"] in [c.strip() for c in it["choices"]] for it in items
    )


def test_a_finished_study_reruns_without_redoing_anything(your_data, run_study):
    root, args = your_data
    result = run_study(ROOT / "params" / "your-data.yaml", root, *args)
    assert result.returncode == 0 and result.stdout.count("skipped") == 8, result.stdout[-2000:]
