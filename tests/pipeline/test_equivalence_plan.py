"""`lorastudy check` says how many evaluation items and training seeds would decide equivalence
at the study's margin, from a finished run's measured variance or a stated assumption."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as st

from lorastudy.pipeline.equivalence import equivalence_plan
from lorastudy.results import planning
from lorastudy.study.load import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_without_seed_variance_the_items_needed_are_the_normal_approximations():
    v = planning.Variance(item_var=0.2, resid_var=0.0, seed_var=0.0, source="test")
    level, m = 0.05 / 18, 0.02
    z = st.norm.isf(level / 2) + st.norm.isf(0.1)  # the Holm-level interval, and 80% two-sided
    assert planning.items_needed(v, 3, m, level) == pytest.approx(0.2 * (z / m) ** 2, rel=0.02)


def test_seed_variance_sets_a_floor_that_no_number_of_items_lowers():
    v = planning.Variance(item_var=0.1, resid_var=0.1, seed_var=2 * 0.02**2, source="test")
    level = 0.05 / 18
    assert planning.items_needed(v, 3, 0.02, level) is None
    fewest = planning.fewest_seeds(v, 0.02, level)
    assert fewest is not None and planning.items_needed(v, fewest, 0.02, level) is not None
    assert planning.items_needed(v, fewest - 1, 0.02, level) is None
    more = [planning.items_needed(v, s, 0.02, level) for s in (fewest, fewest + 10, fewest + 40)]
    assert more == sorted(more, reverse=True)  # more seeds, fewer items
    # A wider margin needs fewer of both.
    assert planning.fewest_seeds(v, 0.05, level) < fewest


def test_the_plan_states_its_assumption_before_the_first_run(tmp_path):
    cfg = load_config(ROOT / "params" / "smollm2-135m.yaml", root=tmp_path)
    text = equivalence_plan(cfg)
    assert "from an assumption (no finished run yet)" in text and "seed-to-seed sd of 0.020" in text
    assert "qlora vs lora, openmath exact_match within \u00b10.020 (assumed before the first run)" in text
    assert "alpha 0.0028" in text  # 0.05 over the study's 18 comparisons


def test_the_plan_uses_the_variance_a_finished_run_measured(tmp_path):
    cfg = load_config(ROOT / "params" / "smollm2-135m.yaml", {"report.equivalence_margin": 0.1}, root=tmp_path)
    results = tmp_path / "runs" / cfg.study / "results"
    results.mkdir(parents=True)
    rows = [
        {"task": t, "metric": m, "method_a": "qlora", "method_b": "lora", "n": 100, "n_seeds": 3, "trained": 2}
        | {"margin": 0.1, "item_var": 0.05, "resid_var": 0.02, "seed_var": 1e-4}
        for t, m in (("arc_challenge", "acc_norm"), ("openmath", "exact_match"), ("squad", "f1"))
    ]
    pd.DataFrame(rows * 6).to_csv(results / "comparisons.csv", index=False)
    text = equivalence_plan(cfg)
    assert f"the variance measured in {results / 'comparisons.csv'}" in text
    line = next(x for x in text.splitlines() if "openmath exact_match" in x)
    assert "within \u00b10.100 (measured, 100 items x 3 seeds)" in line
    v = planning.Variance(0.05, 0.02, 1e-4, "")
    expected = planning.items_needed(v, 5, 0.1, 0.05 / 18)
    assert f"5 seeds: {expected:,} items" in line
