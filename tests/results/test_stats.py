"""Tests for lorastudy.results.stats and results.intervals on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from lorastudy.results.intervals import (
    bootstrap_ci,
    cluster_bootstrap_ci,
    identical_scores_ci,
    paired_bootstrap_ci,
    paired_proportion_ci,
    proportion_ci,
)
from lorastudy.results.stats import (
    compare_paired,
    detectable_difference,
    holm,
    holm_effective_levels,
    is_binary,
    mcnemar_exact,
    min_detectable_difference,
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
    res = compare_paired(a, b, test="mcnemar_exact")
    assert {"delta", "ci_low", "ci_high", "p_value", "test", "se", "df", "ties", "ci_method"} <= set(res)
    assert res["test"] == "mcnemar_exact" and res["ci_method"] == "exact"
    assert res["p_value"] == pytest.approx(0.109375)
    assert res["delta"] == pytest.approx(np.mean(a) - np.mean(b))
    assert res["ci_low"] <= res["delta"] <= res["ci_high"]


def test_compare_paired_continuous_uses_permutation():
    rng = np.random.default_rng(6)
    b = rng.random(80)
    a = np.clip(b + 0.2, 0, 1)
    res = compare_paired(a, b, test="paired_permutation", seed=1)
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


# ---------------------------------------------------------------- the test is declared, not guessed


def test_the_declared_test_is_used_even_when_continuous_scores_happen_to_be_0_or_1():
    # F1 is continuous; on these items every F1 happens to be 0 or 1.
    a, b = _discordant(2, 9, n11=40, n00=49)
    res = compare_paired(a, b, test="paired_permutation")
    assert res["test"] == "paired_permutation" and res["ci_method"] == "bootstrap"
    assert res["p_value"] == pytest.approx(paired_permutation_p(a, b))
    with pytest.raises(ValueError, match="not all 0 or 1"):
        compare_paired([0.5, 1.0, 0.0], [0.0, 1.0, 1.0], test="mcnemar_exact")
    with pytest.raises(ValueError, match="unknown test"):
        compare_paired(a, b, test="t_test")


# ---------------------------------------------------------------- exact intervals


def test_clopper_pearson_matches_published_values():
    # Clopper and Pearson's exact interval, as tabulated (e.g. 5 of 10: 0.187 to 0.813).
    _, low, high = proportion_ci([1] * 5 + [0] * 5)
    assert (low, high) == pytest.approx((0.1871, 0.8129), abs=1e-4)
    _, low, high = proportion_ci([0] * 10)
    assert (low, high) == pytest.approx((0.0, 0.3085), abs=1e-4)
    # Never the zero-width [0, 0] for a sample of zeros.
    assert proportion_ci([0] * 100)[2] == pytest.approx(1 - 0.025 ** (1 / 100))


def test_identical_scores_give_an_honest_interval():
    assert identical_scores_ci(0.0, 100) == pytest.approx(proportion_ci([0] * 100)[1:])
    assert identical_scores_ci(1.0, 100) == pytest.approx(proportion_ci([1] * 100)[1:])
    low, high = identical_scores_ci(0.4, 50)
    assert low < 0.4 < high and high - low == pytest.approx(1 - 0.025 ** (1 / 50))


def _table(b: int, c: int, a: int, d: int) -> tuple[list[int], list[int]]:
    """Paired 0/1 scores: a items both right, b only the first, c only the second, d neither."""
    return [1] * a + [1] * b + [0] * c + [0] * d, [1] * a + [0] * b + [1] * c + [0] * d


def test_the_paired_interval_agrees_with_the_exact_mcnemar_test():
    for confidence in (0.95, 0.99):
        for b in range(0, 16):
            for c in range(0, 16):
                x, y = _table(b, c, a=20, d=60 - b - c)
                delta, low, high = paired_proportion_ci(x, y, confidence=confidence)
                assert low <= delta <= high
                excludes_zero = low > 0 or high < 0
                assert excludes_zero == (mcnemar_exact(x, y) < 1 - confidence), (b, c, confidence)


def test_four_discordant_pairs_of_a_hundred_tell_one_story():
    # The percentile bootstrap excludes 0 here, while exact McNemar cannot go below p = 0.125.
    x, y = _table(4, 0, a=50, d=46)
    assert mcnemar_exact(x, y) == pytest.approx(0.125)
    assert paired_bootstrap_ci(x, y)[1] > 0
    delta, low, high = paired_proportion_ci(x, y)
    assert delta == pytest.approx(0.04) and low < 0 < high
    res = compare_paired(x, y, test="mcnemar_exact")
    assert res["ci_low"] < 0 < res["ci_high"] and res["p_value"] == pytest.approx(0.125)


def test_the_paired_interval_keeps_its_width_when_every_item_ties():
    x, y = _table(0, 0, a=50, d=50)  # Newcombe's method 10 collapses to [0, 0] here
    delta, low, high = paired_proportion_ci(x, y)
    assert delta == 0 and (low, high) == pytest.approx((-0.0362, 0.0362), abs=1e-4)


def test_the_paired_interval_is_conservative_against_newcombes_published_example():
    # Newcombe (1998), Table II: a, b, c, d = 36, 12, 2, 0 gives 0.0569 to 0.3404 by the hybrid
    # score method (10). The exact interval agrees on the sign and is wider.
    x, y = _table(12, 2, a=36, d=0)
    delta, low, high = paired_proportion_ci(x, y)
    assert delta == pytest.approx(0.2)
    assert 0 < low < 0.0569 and high > 0.3404


def test_the_paired_interval_covers_at_least_the_nominal_rate():
    rng = np.random.default_rng(3)
    for n, pb, pc in ((100, 0.04, 0.0), (100, 0.1, 0.05), (60, 0.2, 0.05)):
        true, hits, reps = pb - pc, 0, 400
        for _ in range(reps):
            counts = rng.multinomial(n, [0.45, pb, pc, 0.55 - pb - pc])
            x, y = _table(counts[1], counts[2], a=counts[0], d=counts[3])
            _, low, high = paired_proportion_ci(x, y)
            hits += low - 1e-12 <= true <= high + 1e-12
        assert hits / reps >= 0.95, (n, pb, pc, hits / reps)


# ---------------------------------------------------------------- ties and edge cases


def test_all_tied_continuous_scores_get_a_bound_not_a_point():
    x = np.linspace(0, 1, 100)
    res = compare_paired(x, x, test="paired_permutation")
    assert res["ties"] == "all_tied" and res["p_value"] == 1.0 and res["ci_method"] == "bound"
    assert res["ci_low"] == pytest.approx(-0.0362, abs=1e-4) and res["ci_high"] == pytest.approx(0.0362, abs=1e-4)
    unbounded = compare_paired(x, x, test="paired_permutation", scale=None)
    assert math.isnan(unbounded["ci_low"]) and math.isnan(unbounded["ci_high"])


def test_constant_non_zero_differences():
    b = np.linspace(0, 0.8, 50)
    res = compare_paired(b + 0.1, b, test="paired_permutation")
    assert res["ties"] == "constant" and res["delta"] == pytest.approx(0.1)
    assert res["p_value"] < 0.001  # every sign flip but the observed one gives a smaller |mean|
    assert math.isnan(detectable_difference(res["se"], res["df"], alpha=0.05))


def test_a_comparison_needs_two_items_and_a_metric_needs_one():
    with pytest.raises(ValueError, match="at least 2 items"):
        compare_paired([1.0], [0.0], test="mcnemar_exact")
    with pytest.raises(ValueError, match="empty"):
        compare_paired([], [], test="paired_permutation")
    with pytest.raises(ValueError, match="no value"):
        cluster_bootstrap_ci(np.full((5, 2), np.nan))


# ---------------------------------------------------------------- Holm levels and the MDD


def test_holm_effective_level_is_where_a_comparison_turns_significant():
    rng = np.random.default_rng(0)
    for _ in range(300):
        m = int(rng.integers(1, 20))
        p = rng.random(m) ** 3  # plenty of small p-values
        levels = holm_effective_levels(p, 0.05)
        assert np.array_equal(holm(p) < 0.05, p < levels)
        assert np.all(levels >= 0.05 / m) and np.all(levels <= 0.05)


def test_the_detectable_difference_uses_the_holm_level_not_alpha():
    # The seed report's case: 9 of 100 items lost (F1 0 or 1), raw p about 0.004, 18 comparisons of
    # which 2 are significant; it said an MDD of 0.081 next to a difference of 0.090.
    a, b = [0.0] * 100, [1.0] * 9 + [0.0] * 91
    res = compare_paired(a, b, test="paired_permutation")
    p = np.array([res["p_value"], 1e-6, 1e-6] + [0.5] * 15)
    assert holm(p)[0] >= 0.05
    level = holm_effective_levels(p, 0.05)[0]
    assert level == pytest.approx(0.05 / 16)
    assert detectable_difference(res["se"], res["df"], alpha=0.05) < 0.09
    assert detectable_difference(res["se"], res["df"], alpha=level) > 0.09


def test_detectable_difference_known_value():
    z = st.norm.ppf(0.975) + st.norm.ppf(0.8)
    assert detectable_difference(0.1, 1e9, alpha=0.05) == pytest.approx(z * 0.1, rel=1e-6)
    assert detectable_difference(0.1, 9, alpha=0.05) > z * 0.1  # few degrees of freedom: larger
    assert math.isnan(detectable_difference(0.0, 99, alpha=0.05))


# ---------------------------------------------------------------- several seeds


def test_compare_paired_with_several_runs_uses_the_seed_aware_test():
    rng = np.random.default_rng(2)
    a = (rng.random((2, 80)) < 0.6).astype(float)
    b = (rng.random(80) < 0.5).astype(float)
    res = compare_paired(a, b, test="mcnemar_exact")
    assert res["test"] == "seed_item_bf" and res["ci_method"] == "bf"
    assert len(res["seed_deltas"]) == 2
    assert res["delta"] == pytest.approx(a.mean() - b.mean())
    assert res["ci_low"] < res["delta"] < res["ci_high"]


def test_duplicated_runs_do_not_narrow_a_median_interval():
    # Outputs of several seeds on one item are not independent: resampling is by item.
    errors = np.random.default_rng(4).exponential(5, 120)
    one = cluster_bootstrap_ci(errors[:, None], seed=1)
    three = cluster_bootstrap_ci(np.repeat(errors[:, None], 3, axis=1), seed=1)
    assert one == pytest.approx(three)
    with_missing = errors.copy()
    with_missing[:20] = np.nan
    est, low, high = cluster_bootstrap_ci(with_missing[:, None], seed=1)
    assert est == pytest.approx(np.median(errors[20:])) and low < est < high
