"""Statistics for comparing fine-tuning methods on per-item evaluation scores.

Every method is scored on the same evaluation items, so comparisons are
*paired*: we resample or permute items, never the two methods independently.

The heavy lifting is delegated to SciPy (``bootstrap``, ``binomtest``,
``permutation_test``, ``t``); only what SciPy lacks is written here: the Holm
step-down correction and each comparison's effective level under it, the exact
interval for a difference of paired proportions, the test that adds seed-to-seed
variance to item sampling, and the minimum detectable difference.

Which test a comparison uses is declared by its metric (``lorastudy.tasks``), never
guessed from the values: an F1 score whose values happen to be all 0 or 1 is still
continuous. Each test comes with an interval that tells the same story:

* ``mcnemar_exact`` (0/1 metrics, one run per method): exact McNemar p-value and the
  exact interval of :func:`paired_proportion_ci`, which excludes 0 exactly when
  the test rejects at the same level.
* ``paired_permutation`` (continuous metrics, one run per method): sign-flip
  permutation p-value and a percentile paired bootstrap interval. These two can
  disagree at the margin; the report says so when they do.
* ``seed_item_t`` (several training seeds): a t test and interval whose variance adds
  the seed-to-seed variance of the difference to its item-sampling variance
  (:func:`seed_item_t`).

When every item ties, no resampling interval exists; for scores on a bounded scale
(fractions in [0, 1]) the interval then bounds the share of items that could differ
(:func:`identical_scores_ci`), so it is never the zero-width ``[0, 0]``.

All randomness flows from an explicit ``seed`` turned into a
``numpy.random.Generator``, so the same inputs and seed give the same numbers.
Functions return plain Python floats so results serialise cleanly to JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as _st

from .intervals import (
    _RNG_KW,
    ArrayLike,
    _as_1d,
    _as_pair,
    _check_confidence,
    _is_constant,
    identical_scores_ci,
    is_binary,
    paired_bootstrap_ci,
    paired_proportion_ci,
)

# The tests a metric can declare (one run per method), and the one used with several seeds.
TESTS = ("mcnemar_exact", "paired_permutation")


SEEDED_TEST = "seed_item_t"


def mcnemar_exact(a: ArrayLike, b: ArrayLike) -> float:
    """Exact two-sided McNemar p-value for paired 0/1 scores.

    Only discordant pairs carry information; under H0 each is equally likely
    to favour either method, so their split is Binomial(n01 + n10, 0.5).
    """
    x, y = _as_pair(a, b)
    if not (is_binary(x) and is_binary(y)):
        raise ValueError("mcnemar_exact needs scores that are all 0 or 1")
    n01 = int(np.sum((x == 0) & (y == 1)))
    n10 = int(np.sum((x == 1) & (y == 0)))
    n = n01 + n10
    if n == 0:
        return 1.0
    return float(_st.binomtest(min(n01, n10), n, 0.5, alternative="two-sided").pvalue)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_permutation_p(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation (sign-flip) p-value for ``mean(a - b) == 0``.

    Under H0 the labels within each pair are exchangeable, so swapping them
    (``permutation_type='samples'``) flips the sign of that item's difference.
    SciPy runs the exact test when ``2**n <= n_resamples``.
    """
    x, y = _as_pair(a, b)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if np.all(x == y):
        return 1.0
    res = _st.permutation_test(
        (x, y),
        _mean_diff,
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="two-sided",
        **{_RNG_KW: np.random.default_rng(seed)},
    )
    return float(min(1.0, res.pvalue))


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Controls the family-wise error rate like Bonferroni but is uniformly more
    powerful. The running maximum keeps adjusted values monotone in the raw
    ones, so a smaller raw p never gets a larger adjusted p.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    if p.size == 0:
        return np.array([], dtype=float)
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("p-values must be in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = (m - np.arange(m)) * p[order]
    adjusted_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m, dtype=float)
    out[order] = adjusted_sorted
    return out


def holm_effective_levels(p_values: ArrayLike, alpha: float) -> np.ndarray:
    """The level each comparison's own raw p-value must fall below for Holm to reject it.

    With the other p-values fixed, comparison i is rejected (Holm-adjusted p below alpha)
    exactly when ``p_i < alpha / (m - c_i)``, where ``c_i`` counts the other comparisons
    Holm rejects when p_i is set to 1. This is the level at which a power or detectable-
    difference statement about comparison i must be made, not alpha itself.
    """
    p = np.asarray(p_values, dtype=float).ravel()
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    m = p.size
    levels = np.empty(m, dtype=float)
    for i in range(m):
        others = p.copy()
        others[i] = 1.0
        rejected = int(np.sum(holm(others) < alpha))
        levels[i] = alpha / (m - rejected)
    return levels


def _as_runs(x: ArrayLike, name: str) -> np.ndarray:
    """Scores as (runs, items): a 1-D array is one run."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be 1-D (items) or 2-D (runs x items), got shape {arr.shape}")
    _as_1d(arr.ravel(), name)  # finite and non-empty
    return arr


def seed_item_t(a_runs: ArrayLike, b_runs: ArrayLike, *, confidence: float = 0.95) -> dict[str, Any]:
    """Paired difference over items and training seeds, with a t test and interval whose
    variance counts both sources of noise.

    ``a_runs`` and ``b_runs`` are (seeds, items); a method with one run (the untrained base)
    is compared with every seed of the other, and two trained methods are paired seed by
    seed (seed s of both shares its data order and adapter initialisation). With D[s, i] the
    per-item difference, the standard error of the mean difference is

        SE^2 = var_i(mean_s D[s, i]) / n  +  var_s(mean_i D[s, i]) / S

    the item-sampling variance plus the seed-to-seed variance of the per-seed difference.
    It counts the seed-by-item interaction twice, so it errs on the wide side. Degrees of
    freedom follow Welch-Satterthwaite, which with 2 or 3 seeds and a real seed effect gives
    the few degrees of freedom that so few runs deserve.
    """
    a, b = _as_runs(a_runs, "a"), _as_runs(b_runs, "b")
    _check_confidence(confidence)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired scores must cover the same items, got {a.shape[1]} and {b.shape[1]}")
    if a.shape[0] != b.shape[0] and min(a.shape[0], b.shape[0]) != 1:
        raise ValueError(f"cannot pair {a.shape[0]} runs with {b.shape[0]} runs")
    d = a - b
    seeds, n = d.shape
    delta = float(d.mean())
    item_means, seed_means = d.mean(axis=0), d.mean(axis=1)
    var_items = float(item_means.var(ddof=1)) / n if n > 1 else 0.0
    var_seeds = float(seed_means.var(ddof=1)) / seeds if seeds > 1 else 0.0
    se = math.sqrt(var_items + var_seeds)
    parts = [(var_items, n - 1), (var_seeds, seeds - 1)]
    denominator = sum(v * v / k for v, k in parts if v > 0 and k > 0)
    df = (var_items + var_seeds) ** 2 / denominator if denominator > 0 else float(max(n - 1, 1))
    if se == 0.0:
        # Every item and seed differs by the same amount: no variance to scale a t statistic,
        # so fall back to the exact sign-flip test over items.
        p = 1.0 if delta == 0.0 else paired_permutation_p(item_means, np.zeros(n))
        low = high = delta
    else:
        p = float(2.0 * _st.t.sf(abs(delta) / se, df))
        half = float(_st.t.ppf(0.5 + confidence / 2.0, df)) * se
        low, high = delta - half, delta + half
    return {
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_value": min(1.0, p),
        "se": se,
        "df": df,
        "seed_deltas": [float(v) for v in seed_means],
    }


def _ties(d: np.ndarray) -> str:
    if np.all(d == 0):
        return "all_tied"
    return "constant" if _is_constant(d) else ""


def _paired_runs(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    runs_a, runs_b = _as_runs(a, "a"), _as_runs(b, "b")
    if runs_a.shape[1] != runs_b.shape[1]:
        raise ValueError(f"paired scores must have the same length, got {runs_a.shape[1]} and {runs_b.shape[1]}")
    if runs_a.shape[1] < 2:
        raise ValueError(f"a paired comparison needs at least 2 items, got {runs_a.shape[1]}")
    if runs_a.shape[0] != runs_b.shape[0] and min(runs_a.shape[0], runs_b.shape[0]) != 1:
        raise ValueError(f"cannot pair {runs_a.shape[0]} runs with {runs_b.shape[0]} runs")
    return runs_a, runs_b


def _one_run(x: np.ndarray, y: np.ndarray, test: str, ties: str, **options) -> dict[str, Any]:
    """One run per method: the declared test, and an interval that agrees with it."""
    d = x - y
    # Equal differences leave only rounding noise in their sd: no spread at all.
    se = 0.0 if ties else float(np.std(d, ddof=1)) / math.sqrt(len(d))
    result = {"se": se, "df": float(len(d) - 1), "seed_deltas": [float(d.mean())]}
    if test == "mcnemar_exact":
        if not (is_binary(x) and is_binary(y)):
            raise ValueError("the metric declares mcnemar_exact, but its scores are not all 0 or 1")
        delta, low, high = paired_proportion_ci(x, y, confidence=options["confidence"])
        result.update(p_value=mcnemar_exact(x, y), ci_method="exact")
    else:
        delta, low, high = paired_bootstrap_ci(x, y, **options)
        result.update(p_value=paired_permutation_p(x, y, seed=options["seed"]), ci_method="bootstrap")
    result.update(test=test, delta=delta, ci_low=low, ci_high=high)
    return result


def compare_paired(
    a: ArrayLike,
    b: ArrayLike,
    *,
    test: str,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    scale: tuple[float, float] | None = (0.0, 1.0),
) -> dict[str, Any]:
    """Compare method ``a`` with method ``b`` on the same items.

    ``a`` and ``b`` are per-item scores, 1-D for one run per method or (runs, items) for
    several training seeds. ``test`` is the metric's declared test (one of ``TESTS``); with
    several runs on either side the comparison is :func:`seed_item_t` instead, whatever the
    metric, since a per-item test would ignore run-to-run training variance.

    Returns ``delta`` (= mean(a) - mean(b)), its interval ``ci_low``/``ci_high`` (named by
    ``ci_method``), ``p_value`` from the test named in ``test``, the standard error ``se``
    of delta and its degrees of freedom ``df`` (for the detectable difference), ``ties``
    ("all_tied" when every item's difference is 0 in every run, "constant" when every item
    differs by the same non-zero amount, else "") and the per-seed deltas. ``scale`` is the metric's
    range; when every item ties it bounds the interval (:func:`identical_scores_ci`).
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")
    runs_a, runs_b = _paired_runs(a, b)
    n = runs_a.shape[1]
    ties = _ties((runs_a - runs_b).ravel())  # every item in every run
    if max(runs_a.shape[0], runs_b.shape[0]) > 1:
        result = seed_item_t(runs_a, runs_b, confidence=confidence)
        result.update(test=SEEDED_TEST, ci_method="t")
    else:
        result = _one_run(runs_a[0], runs_b[0], test, ties, n_resamples=n_resamples, confidence=confidence, seed=seed)
    if ties == "all_tied" and result["ci_method"] != "exact":
        if scale is None:
            low = high = float("nan")
        else:
            width = scale[1] - scale[0]
            low, high = identical_scores_ci(0.0, n, confidence=confidence, low=-width, high=width)
        result.update(delta=0.0, ci_low=low, ci_high=high, ci_method="bound")
    result["ties"] = ties
    return result


def detectable_difference(se: float, df: float, *, alpha: float, power: float = 0.8) -> float:
    """Smallest true difference a two-sided test at level ``alpha`` detects with probability
    ``power``, for an estimate with standard error ``se`` on ``df`` degrees of freedom:

        (t_{df, 1 - alpha/2} + t_{df, power}) * se

    A planning figure from the observed standard error (a t approximation, whatever exact
    test the comparison uses). NaN when ``se`` is 0: every item differed by the same amount,
    so there is no spread to size a difference from.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    if not (math.isfinite(se) and se > 0.0):
        return float("nan")
    return float((_st.t.ppf(1.0 - alpha / 2.0, df) + _st.t.ppf(power, df)) * se)


def min_detectable_difference(
    diffs: ArrayLike | None = None,
    *,
    n: int | None = None,
    p: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> float:
    """Smallest true mean difference a two-sided paired test at level ``alpha``
    detects with probability ``power`` (normal approximation):

        (z_{1 - alpha/2} + z_{power}) * sd / sqrt(n)

    ``sd`` is the standard deviation of the per-item paired difference:

    * If ``diffs`` (observed per-item differences) is given, ``sd`` is their
      sample std (ddof=1) and ``n = len(diffs)``.
    * If ``diffs`` is not given, or their sd is 0 (e.g. two methods produced
      identical outputs, which says nothing about the noise of a real
      difference), ``sd`` falls back to ``sqrt(2 p (1 - p))``: the sd of the
      difference of two *independent* 0/1 scores with success rate ``p``.
      ``p`` defaults to 0.5, where that sd is largest. Methods fine-tuned from
      one base model are usually positively correlated per item, which lowers
      the true sd, so the fallback is conservative (it overstates the MDD).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    rate = 0.5 if p is None else float(p)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")

    sd = 0.0
    if diffs is not None:
        d = _as_1d(diffs, "diffs")
        if n is not None and n != d.size:
            raise ValueError(f"n={n} disagrees with len(diffs)={d.size}")
        n = d.size
        if n >= 2:
            sd = float(np.std(d, ddof=1))
    if n is None:
        raise ValueError("give either diffs or n")
    if n < 2:
        raise ValueError(f"need at least 2 items, got n={n}")
    if sd == 0.0:
        sd = math.sqrt(2.0 * rate * (1.0 - rate))

    z = _st.norm.ppf(1.0 - alpha / 2.0) + _st.norm.ppf(power)
    return float(z * sd / math.sqrt(n))


def seed_summary(values: Sequence[float] | ArrayLike) -> dict[str, Any]:
    """Mean and spread of one metric across training seeds.

    ``sd`` uses ddof=1 and is ``None`` for a single seed: a spread cannot be
    estimated from one run, and ``None`` renders as a blank rather than NaN.
    """
    v = _as_1d(values, "values")
    sd = float(np.std(v, ddof=1)) if v.size > 1 else None
    return {"mean": float(np.mean(v)), "sd": sd, "n_seeds": int(v.size)}
