"""Tests for lorastudy.stats on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from lorastudy.stats import (
    bootstrap_ci,
    compare_paired,
    holm,
    is_binary,
    mcnemar_exact,
    min_detectable_difference,
    paired_bootstrap_ci,
    paired_permutation_p,
    seed_summary,
)


def _discordant(n01: int, n10: int, n11: int = 5, n00: int = 7) -> tuple[list[int], list[int]]:
    a = [0] * n01 + [1] * n10 + [1] * n11 + [0] * n00
    b = [1] * n01 + [0] * n10 + [1] * n11 + [0] * n00
    return a, b


# ---------------------------------------------------------------- McNemar


def test_mcnemar_hand_computed():
    a, b = _discordant(8, 2)
    # 2 * P(X <= 2), X ~ Bin(10, 0.5) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(a, b) == pytest.approx(0.109375, abs=1e-12)


def test_mcnemar_symmetric_in_argument_order():
    a, b = _discordant(8, 2)
    assert mcnemar_exact(b, a) == pytest.approx(mcnemar_exact(a, b), abs=1e-15)


def test_mcnemar_no_discordant_pairs_is_one():
    a, b = _discordant(0, 0)
    assert mcnemar_exact(a, b) == 1.0


def test_mcnemar_balanced_is_one_and_extreme_is_small():
    assert mcnemar_exact(*_discordant(5, 5)) == pytest.approx(1.0)
    # 12 discordant pairs all one way: 2 * 0.5**12
    assert mcnemar_exact(*_discordant(12, 0)) == pytest.approx(2 / 4096, rel=1e-12)


def test_mcnemar_rejects_non_binary_and_mismatch():
    with pytest.raises(ValueError):
        mcnemar_exact([0, 1, 0.5], [0, 1, 1])
    with pytest.raises(ValueError):
        mcnemar_exact([0, 1, 2], [0, 1, 1])
    with pytest.raises(ValueError):
        mcnemar_exact([0, 1], [0, 1, 1])
    with pytest.raises(ValueError):
        mcnemar_exact([], [])


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_contains_true_mean_with_expected_width():
    rng = np.random.default_rng(12345)
    x = (rng.random(500) < 0.3).astype(float)
    m, lo, hi = bootstrap_ci(x, seed=1)
    assert m == pytest.approx(x.mean())
    assert lo < 0.3 < hi
    assert lo < m < hi
    expected_width = 2 * 1.96 * math.sqrt(0.3 * 0.7 / 500)
    assert (hi - lo) == pytest.approx(expected_width, rel=0.2)


def test_bootstrap_coverage_is_nominal():
    rng = np.random.default_rng(2024)
    true_p, n, reps = 0.3, 200, 200
    hits = 0
    for i in range(reps):
        x = (rng.random(n) < true_p).astype(float)
        _, lo, hi = bootstrap_ci(x, n_resamples=1000, seed=i)
        hits += lo <= true_p <= hi
    coverage = hits / reps
    assert 0.90 <= coverage <= 0.99


def test_bootstrap_same_seed_reproducible_different_seed_differs():
    x = np.random.default_rng(7).normal(size=80)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    assert bootstrap_ci(x, seed=3) != bootstrap_ci(x, seed=4)


def test_bootstrap_confidence_widens_interval():
    x = np.random.default_rng(8).normal(size=100)
    _, lo90, hi90 = bootstrap_ci(x, confidence=0.90)
    _, lo99, hi99 = bootstrap_ci(x, confidence=0.99)
    assert (hi99 - lo99) > (hi90 - lo90)


def test_bootstrap_degenerate_inputs():
    assert bootstrap_ci([0.7] * 50) == (0.7, 0.7, 0.7)
    assert bootstrap_ci([0.25]) == (0.25, 0.25, 0.25)
    with pytest.raises(ValueError):
        bootstrap_ci([])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, float("nan")])


# ---------------------------------------------------------------- paired bootstrap


def test_paired_bootstrap_constant_shift():
    b = np.random.default_rng(0).random(60)
    a = b + 0.1
    delta, lo, hi = paired_bootstrap_ci(a, b)
    assert delta == pytest.approx(0.1, abs=1e-12)
    assert lo == pytest.approx(0.1, abs=1e-12)
    assert hi == pytest.approx(0.1, abs=1e-12)


def test_paired_bootstrap_clear_improvement_excludes_zero():
    rng = np.random.default_rng(1)
    b = (rng.random(300) < 0.4).astype(float)
    a = b.copy()
    # a fixes 60 of b's wrong answers and breaks 5 of its right ones
    wrong, right = np.flatnonzero(b == 0), np.flatnonzero(b == 1)
    a[wrong[:60]] = 1
    a[right[:5]] = 0
    delta, lo, hi = paired_bootstrap_ci(a, b, seed=2)
    assert delta == pytest.approx(55 / 300)
    assert 0 < lo < delta < hi


def test_paired_bootstrap_uses_pairing():
    # b is a plus small noise: an unpaired interval would be ~ as wide as the
    # spread of a itself; the paired one reflects only the noise.
    rng = np.random.default_rng(5)
    a = rng.normal(0, 1, 200)
    b = a + rng.normal(0, 0.05, 200)
    _, lo, hi = paired_bootstrap_ci(a, b)
    assert hi - lo < 0.05


def test_paired_bootstrap_rejects_mismatch():
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1, 0, 1], [1, 0])
    with pytest.raises(ValueError):
        paired_bootstrap_ci([], [])


# ---------------------------------------------------------------- permutation


def test_permutation_exact_small_case():
    # differences [1, 2, 3]: of the 8 sign flips only all-plus and all-minus
    # reach |mean| >= 2, so the exact two-sided p is 2/8.
    assert paired_permutation_p([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_permutation_clear_shift_and_null():
    rng = np.random.default_rng(11)
    b = rng.normal(0, 1, 100)
    a = b + 1.0 + rng.normal(0, 0.3, 100)
    assert paired_permutation_p(a, b) < 0.001
    assert paired_permutation_p(b, b) == 1.0


def test_permutation_close_to_paired_t_test():
    rng = np.random.default_rng(3)
    b = rng.normal(0, 1, 40)
    a = b + rng.normal(0.3, 1, 40)
    t_p = st.ttest_rel(a, b).pvalue
    assert 0.005 < t_p < 0.5  # a moderate p, so the comparison is informative
    assert paired_permutation_p(a, b, seed=0) == pytest.approx(t_p, abs=0.03)


def test_permutation_reproducible():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert paired_permutation_p(a, b, seed=9) == paired_permutation_p(a, b, seed=9)


# ---------------------------------------------------------------- Holm


def test_holm_hand_computed():
    adj = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adj, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_is_monotone():
    p = np.array([0.5, 0.2, 0.9, 0.01])
    adj = holm(p)
    assert np.all(adj <= 1.0)
    assert np.all(adj >= p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    np.testing.assert_allclose(adj, [1.0, 0.6, 1.0, 0.04])


def test_holm_edge_cases():
    assert holm([]).shape == (0,)
    np.testing.assert_allclose(holm([0.03]), [0.03])
    with pytest.raises(ValueError):
        holm([0.1, 1.5])


# ---------------------------------------------------------------- compare_paired


def test_is_binary():
    assert is_binary([0, 1, 1, 0])
    assert is_binary([0.0, 1.0])
    assert is_binary(np.array([True, False]))
    assert not is_binary([0, 0.5, 1])
    assert not is_binary([0, 2])
    assert not is_binary([])


def test_compare_paired_binary_uses_mcnemar():
    a, b = _discordant(8, 2)
    res = compare_paired(a, b)
    assert set(res) == {"delta", "ci_low", "ci_high", "p_value", "test"}
    assert res["test"] == "mcnemar_exact"
    assert res["p_value"] == pytest.approx(0.109375)
    assert res["delta"] == pytest.approx(np.mean(a) - np.mean(b))
    assert res["ci_low"] <= res["delta"] <= res["ci_high"]


def test_compare_paired_continuous_uses_permutation():
    rng = np.random.default_rng(6)
    b = rng.random(80)
    a = np.clip(b + 0.2, 0, 1)
    res = compare_paired(a, b, seed=1)
    assert res["test"] == "paired_permutation"
    assert res["p_value"] == pytest.approx(paired_permutation_p(a, b, seed=1))
    assert res["p_value"] < 0.01
    assert res["ci_low"] > 0


# ---------------------------------------------------------------- MDD


def test_mdd_binary_fallback_known_value():
    expected = (1.959964 + 0.841621) * math.sqrt(0.5) / 10
    assert min_detectable_difference(n=100) == pytest.approx(expected, rel=1e-5)
    assert min_detectable_difference(n=100, p=0.5) == pytest.approx(0.19810, abs=1e-5)


def test_mdd_decreases_with_n():
    values = [min_detectable_difference(n=k) for k in (50, 100, 400, 1600)]
    assert all(x > y for x, y in zip(values, values[1:]))
    # 4x the items halves the MDD
    assert values[2] == pytest.approx(values[1] / 2)


def test_mdd_uses_sd_of_diffs():
    d = np.array([0.0, 1.0, -1.0, 0.5, -0.5, 0.0, 1.0, 0.0])
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    expected = z * np.std(d, ddof=1) / math.sqrt(d.size)
    assert min_detectable_difference(d) == pytest.approx(expected)


def test_mdd_zero_sd_diffs_fall_back_to_binomial():
    assert min_detectable_difference(np.zeros(100)) == pytest.approx(min_detectable_difference(n=100))


def test_mdd_errors():
    with pytest.raises(ValueError):
        min_detectable_difference(n=1)
    with pytest.raises(ValueError):
        min_detectable_difference([0.3])
    with pytest.raises(ValueError):
        min_detectable_difference()
    with pytest.raises(ValueError):
        min_detectable_difference([0.1, 0.2, 0.3], n=10)


# ---------------------------------------------------------------- seed summary


def test_seed_summary():
    s = seed_summary([0.70, 0.72, 0.74])
    assert s["mean"] == pytest.approx(0.72)
    assert s["sd"] == pytest.approx(0.02)
    assert s["n_seeds"] == 3
    assert seed_summary([0.5]) == {"mean": 0.5, "sd": None, "n_seeds": 1}
    with pytest.raises(ValueError):
        seed_summary([])


def test_bootstrap_ci_of_the_median_brackets_the_sample_median():
    scores = np.array([1.0, 2.0, 3.0, 4.0, 100.0] * 20)
    est, lo, hi = bootstrap_ci(scores, statistic=np.median, seed=3)
    assert est == 3.0
    assert lo <= 3.0 <= hi
    # The mean is dragged up by the outliers; the median's interval is not.
    assert hi < np.mean(scores)
