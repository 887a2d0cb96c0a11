"""Every generated sentence that asserts a fact about the items, tested against data where the
fact is false: the sentence must then not be said (and what is true is said instead)."""

from __future__ import annotations

import pandas as pd
from test_result_tables import N, smoke_like, study

from lorastudy import report
from lorastudy.report import verdicts


def test_errors_are_said_to_be_all_equal_only_when_they_are(tmp_path):
    # The seed report: "all 100 errors equal, so no interval" where 80 of 100 errors were 0.
    def mostly_exact(run, seed):
        data = smoke_like(run, seed)
        data["openmath"]["abs_error"] = [0.0] * 80 + [float(i + 1) for i in range(20)]
        return data

    text = report.performance_tables(study(tmp_path, data=mostly_exact))
    assert "all 100 errors equal" not in text
    assert "80 of the 100 errors equal 0.000, so the bootstrap interval collapses to that value" in text

    def all_exact(run, seed):
        data = smoke_like(run, seed)
        data["openmath"]["abs_error"] = [0.0] * N
        return data

    assert "all 100 errors equal, so no interval" in report.performance_tables(study(tmp_path / "all", data=all_exact))


def test_items_are_said_to_score_the_same_only_when_every_output_does(tmp_path):
    # Two seeds, one right on every item and one wrong on every item: every item's mean is 0.5,
    # yet no item "scored 0.500".
    def alternating(run, seed):
        data = smoke_like(run, seed)
        if run.startswith("lora"):
            data["squad"]["exact_match"] = [float(seed == 0)] * N
        return data

    res = study(tmp_path, seeds=(0, 1), data=alternating)
    text = report.performance_tables(res)
    assert "(all 100 items scored 0.500)" not in text
    m = res.metrics
    row = m[(m.method == "lora") & (m.task == "squad") & (m.metric == "exact_match")].iloc[0]
    assert row.value == 0.5 and row.ci_low < 0.5 < row.ci_high  # and no zero-width interval either
    assert "(all 100 items scored 0.000)" in text  # QLoRA's, which are


def test_items_are_said_to_tie_only_when_they_tie_in_every_run(tmp_path):
    def tie_in_one_seed(run, seed):
        data = smoke_like(run.split("_seed")[0], 0)
        if run == "qlora_seed1":
            data["squad"]["f1"][0] = 0.5
        return data

    res = study(tmp_path, seeds=(0, 1), data=tie_in_one_seed)
    c = res.comparisons
    row = c[(c.task == "squad") & (c.metric == "f1") & (c.method_a == "qlora") & (c.method_b == "lora")].iloc[0]
    sentence = verdicts.verdict(row, 0.05).sentence
    assert "scored identically" not in sentence and "cannot separate" not in sentence
    tied = c[(c.task == "squad") & (c.metric == "exact_match") & (c.method_a == "qlora") & (c.method_b == "lora")]
    assert "both scored 0.000 on every item" in verdicts.verdict(tied.iloc[0], 0.05).sentence


def test_items_are_said_to_differ_by_exactly_one_amount_only_when_they_do():
    # An interval can be narrow or a point for other reasons than equal differences.
    row = pd.Series(
        {
            "task": "squad",
            "metric": "f1",
            "method_a": "lora",
            "method_b": "base",
            "delta": 0.05,
            "ci_low": 0.05,
            "ci_high": 0.05,
            "verdict_ci_low": 0.05,
            "verdict_ci_high": 0.05,
            "p_value": 0.001,
            "p_holm": 0.01,
            "test": "paired_permutation",
            "ci_method": "bootstrap",
            "ties": "",
            "n": 100,
            "higher_is_better": True,
            "primary": True,
            "alpha_effective": 0.005,
            "mdd": 0.04,
            "n_seeds": 1,
            "trained": 1,
            "verdict": "better",
            "bound": "",
            "margin": float("nan"),
            "provisional": False,
        }
    )
    assert "every one of the 100 items differs" not in verdicts.verdict(row, 0.05).sentence
    assert "every item" not in verdicts.verdict_cell(row)
    row["ties"] = "constant"
    assert "every one of the 100 items differs by exactly +0.050" in verdicts.verdict(row, 0.05).sentence


def test_the_examples_count_differing_items_in_the_runs_they_show(tmp_path):
    # With several seeds the examples show the first seed's outputs; the count is of those runs.
    def differ_in_seed_one(run, seed):
        data = smoke_like(run.split("_seed")[0], 0)
        if run == "lora_seed1":
            data["squad"]["f1"] = [1.0] * N
        for columns in data.values():
            columns.update(question=["q"] * N, output=["o"] * N, references=[["r"]] * N)
        return data

    text = report.examples(study(tmp_path, seeds=(0, 1), data=differ_in_seed_one))
    assert "### SQuAD v1.1: the methods' f1 differs on 9 of 100 items in seed 0's runs" in text
