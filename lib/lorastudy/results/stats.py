"""Statistics for comparing fine-tuning methods on per-item evaluation scores.

Every method is scored on the same evaluation items, so comparisons are
*paired*: we resample or permute items, never the two methods independently.

The heavy lifting is delegated to SciPy (``bootstrap``, ``binomtest``,
``permutation_test``, ``t``); only what SciPy lacks is written here: the Holm
step-down correction and each comparison's effective level under it, the exact
interval for a difference of paired proportions, the interval a permutation test inverts,
and the minimum detectable difference (the test over seeds is in ``seeds.py``).

Which test a comparison uses is declared by its metric (``lorastudy.tasks``), never
guessed from the values: an F1 score whose values happen to be all 0 or 1 is still
continuous. Each test comes with an interval that tells the same story:

* ``mcnemar_exact`` (0/1 metrics, one run per method): exact McNemar p-value and the
  exact interval of :func:`paired_proportion_ci`, which excludes 0 exactly when
  the test rejects at the same level.
* ``paired_permutation`` (continuous metrics, one run per method): sign-flip
  permutation p-value and a percentile paired bootstrap interval. These two can
  disagree at the margin; the report says so when they do.
* ``seed_item_bf`` (several training seeds): a test and interval whose variance adds each
  trained method's seed-to-seed variance to item sampling, on a distribution that holds its
  level at 2 to 5 seeds (:mod:`lorastudy.results.seeds`).

:func:`lorastudy.results.verdict_intervals.verdict_interval` gives the interval at any level
(a comparison's Holm level) that agrees with the test there: it excludes 0 exactly when the
p-value is below the level.

When every item ties, no resampling interval exists; for scores on a bounded scale
(fractions in [0, 1]) the interval then bounds the share of items that could differ
(:func:`identical_scores_ci`), so it is never the zero-width ``[0, 0]``.

All randomness flows from an explicit ``seed`` turned into a
``numpy.random.Generator``, so the same inputs and seed give the same numbers.
Functions return plain Python floats so results serialise cleanly to JSON.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as _st

from . import seeds
from .intervals import (
    ArrayLike,
    _as_1d,
    _as_pair,
    _is_constant,
    identical_scores_ci,
    is_binary,
    paired_bootstrap_ci,
    paired_proportion_ci,
)

# The tests a metric can declare (one run per method), and the one used with several seeds.
TESTS = ("mcnemar_exact", "paired_permutation")


SEEDED_TEST = "seed_item_bf"


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


@functools.lru_cache(maxsize=8)
def _sign_flips(n: int, n_resamples: int, seed: int) -> tuple[np.ndarray, bool]:
    """The sign vectors of a sign-flip test: all 2**n when there are at most n_resamples (the
    exact test), else n_resamples random ones from ``seed``. Cached, so a test inverted for an
    interval flips the same signs at every shift."""
    if n < 63 and 2**n <= n_resamples:
        codes = np.arange(2**n)[:, None] >> np.arange(n)[None, :]
        signs, exact = 1 - 2 * (codes & 1), True
    else:
        signs, exact = np.random.default_rng(seed).choice(np.array([-1, 1]), size=(n_resamples, n)), False
    signs = signs.astype(np.int8)
    signs.flags.writeable = False
    return signs, exact


def paired_permutation_p(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 10000,
    seed: int = 0,
) -> float:
    """Two-sided paired permutation (sign-flip) p-value for ``mean(a - b) == 0``.

    Under H0 the labels within each pair are exchangeable, so swapping them flips the sign of
    that item's difference. As SciPy's ``permutation_test(permutation_type="samples")``: exact
    when ``2**n <= n_resamples``, else ``n_resamples`` random flips with the observed statistic
    counted among them; two-sided as twice the smaller one-sided p. Written out (and checked
    against SciPy) because an interval inverts it at many shifts with the same flips.
    """
    x, y = _as_pair(a, b)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if np.all(x == y):
        return 1.0
    d = x - y
    signs, exact = _sign_flips(d.size, n_resamples, seed)
    observed = float(d.mean())
    null = np.concatenate([chunk @ d for chunk in np.array_split(signs, max(1, signs.size // 2_000_000))]) / d.size
    # Equal up to rounding counts as equal, as SciPy compares.
    tol = 1e-12 * max(1.0, abs(observed))
    extra = 0 if exact else 1
    less = (np.sum(null <= observed + tol) + extra) / (null.size + extra)
    greater = (np.sum(null >= observed - tol) + extra) / (null.size + extra)
    return float(min(1.0, 2.0 * min(less, greater)))


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
    result = {"se": se, "df": float(len(d) - 1), "seed_deltas": [float(d.mean())], "v_items": se * se}
    result.update(v_seeds=float("nan"), seed_share=float("nan"), item_var=float(np.var(d, ddof=1)))
    result.update(resid_var=float("nan"), seed_var=float("nan"))
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
    several runs on either side the comparison is :func:`seeds.seed_test` instead, whatever the
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
        result = seeds.seed_test(runs_a, runs_b, confidence=confidence)
        result.update(test=SEEDED_TEST, ci_method="bf")
        if ties:
            # No variance at all: every item and run differs by the same amount.
            item_means = (runs_a - runs_b).mean(axis=0)
            p = 1.0 if ties == "all_tied" else paired_permutation_p(item_means, np.zeros(n), seed=seed)
            # What variance the parts show is rounding (the mean of equal runs off by an ulp).
            result.update(p_value=p, ci_low=result["delta"], ci_high=result["delta"], se=0.0, v_items=0.0)
            result.update(v_seeds=0.0, seed_share=float("nan"))
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
