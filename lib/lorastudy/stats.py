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

import inspect
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as _st

__all__ = [
    "TESTS",
    "bootstrap_ci",
    "proportion_ci",
    "identical_scores_ci",
    "cluster_bootstrap_ci",
    "paired_bootstrap_ci",
    "paired_proportion_ci",
    "mcnemar_exact",
    "paired_permutation_p",
    "seed_item_t",
    "holm",
    "holm_effective_levels",
    "is_binary",
    "compare_paired",
    "detectable_difference",
    "min_detectable_difference",
    "seed_summary",
]

# The tests a metric can declare (one run per method), and the one used with several seeds.
TESTS = ("mcnemar_exact", "paired_permutation")
SEEDED_TEST = "seed_item_t"

ArrayLike = npt.ArrayLike

# SciPy renamed ``random_state`` to ``rng`` in 1.15; the project supports
# scipy>=1.11, so pick whichever keyword this SciPy understands.
_RNG_KW = "rng" if "rng" in inspect.signature(_st.bootstrap).parameters else "random_state"


def _as_1d(x: ArrayLike, name: str = "scores") -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_pair(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired scores must have the same length, got {x.size} and {y.size}")
    return x, y


def _is_constant(x: np.ndarray) -> bool:
    # Differences like (b + 0.1) - b carry rounding noise of a few ulps; treat
    # that as constant rather than bootstrapping noise.
    return bool(np.ptp(x) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))))


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


def bootstrap_ci(
    scores: ArrayLike,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    statistic: Any = np.mean,
) -> tuple[float, float, float]:
    """Mean (or ``statistic``, e.g. ``np.median``) of ``scores`` and its
    percentile-bootstrap confidence interval.

    Returns ``(estimate, low, high)``. With one item or identical scores there is
    no sampling variability to estimate, so the interval collapses to the mean
    (SciPy would refuse or emit a degenerate-data warning instead).
    """
    x = _as_1d(scores)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    _check_confidence(confidence)
    # np.mean of identical values can be off by an ulp; report the value itself.
    m = float(x[0]) if np.all(x == x[0]) else float(statistic(x))
    if x.size == 1 or _is_constant(x):
        return m, m, m
    res = _st.bootstrap(
        (x,),
        lambda sample, axis=-1: statistic(sample, axis=axis),
        n_resamples=n_resamples,
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        **{_RNG_KW: np.random.default_rng(seed)},
    )
    ci = res.confidence_interval
    return m, float(ci.low), float(ci.high)


def _clopper_pearson(k: int, n: int, confidence: float) -> tuple[float, float]:
    ci = _st.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def proportion_ci(scores: ArrayLike, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """Share of 1s in 0/1 ``scores`` with its exact (Clopper-Pearson) interval.

    Exact and never zero-width: 0 of 100 gives [0, 0.036], not the bootstrap's [0, 0].
    """
    x = _as_1d(scores)
    _check_confidence(confidence)
    if not is_binary(x):
        raise ValueError("proportion_ci needs scores that are all 0 or 1")
    k = int(x.sum())
    low, high = _clopper_pearson(k, x.size, confidence)
    return k / x.size, low, high


def identical_scores_ci(
    value: float, n: int, *, confidence: float = 0.95, low: float = 0.0, high: float = 1.0
) -> tuple[float, float]:
    """Interval for a mean when all ``n`` observed items scored ``value`` on a scale [low, high].

    No resampling interval exists when every item ties, yet the sample does not prove that
    every future item would tie. The share of items that could score differently is at most
    the Clopper-Pearson upper bound for 0 of n, and each such item moves the mean at most
    to the end of the scale, so the mean lies in the returned interval. For 0/1 scores it
    equals the Clopper-Pearson interval of 0 (or n) successes out of n.
    """
    if n < 1:
        raise ValueError(f"need at least 1 item, got n={n}")
    if not low <= value <= high:
        raise ValueError(f"value {value} lies outside the scale [{low}, {high}]")
    _check_confidence(confidence)
    share = _clopper_pearson(0, n, confidence)[1]
    return value - (value - low) * share, value + (high - value) * share


def cluster_bootstrap_ci(
    values: ArrayLike,
    *,
    statistic: Any = np.nanmedian,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``statistic`` over every value of an (items, runs) array, NaN marking a missing value,
    with a percentile interval from resampling items (rows) with replacement.

    Outputs of several seeds on one item are not independent draws, so the resampling unit
    is the item, with all its runs; with one run it is the ordinary bootstrap. Items whose
    values are all missing stay in the resampling pool: how many items have a value varies
    from sample to sample too.
    """
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"values must be (items, runs), got shape {arr.shape}")
    present = arr[~np.isnan(arr)]
    if present.size == 0:
        raise ValueError("values has no value to summarise")
    if not np.all(np.isfinite(present)):
        raise ValueError("values contains infinite values")
    _check_confidence(confidence)
    estimate = float(statistic(present))
    if present.size == 1 or _is_constant(present):
        return estimate, estimate, estimate
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, arr.shape[0], size=(n_resamples, arr.shape[0]))
    samples = arr[picks].reshape(n_resamples, -1)
    samples = samples[~np.all(np.isnan(samples), axis=1)]
    resampled = statistic(samples, axis=1)
    low, high = np.quantile(resampled, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return estimate, float(low), float(high)


def paired_bootstrap_ci(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` over paired items, with a paired bootstrap CI.

    ``a[i]`` and ``b[i]`` must score the same item. Resampling items and
    recomputing the mean difference is the same as bootstrapping the per-item
    differences ``a - b``, which keeps the item-level correlation between
    methods (ignoring it would make the interval too wide).
    """
    x, y = _as_pair(a, b)
    return bootstrap_ci(x - y, n_resamples=n_resamples, confidence=confidence, seed=seed)


def paired_proportion_ci(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> tuple[float, float, float]:
    """``mean(a) - mean(b)`` for paired 0/1 scores, with an exact interval that agrees with
    the exact McNemar test.

    With ``nb`` items where only ``a`` scores, ``nc`` where only ``b`` does and ``N = nb + nc``
    discordant items of ``n``, the difference is ``psi * (2 theta - 1)``: ``psi`` the rate of
    discordant items, ``theta`` the share of them that favour ``a``. The exact McNemar test is
    the binomial test of ``theta = 1/2`` given ``N``, so the interval takes ``theta`` from its
    Clopper-Pearson interval given ``N`` and ``psi`` from the Clopper-Pearson interval of N
    out of n, and spans the products of their ends. It therefore

    * excludes 0 exactly when the exact McNemar test rejects at ``1 - confidence``;
    * keeps a non-zero width when no item is discordant (``[-psi_max, +psi_max]``);
    * is conservative: in simulations (n = 30 to 500, discordant rates 1% to 40%) its
      coverage was 98-100% for a nominal 95%, where Newcombe's hybrid score interval (1998,
      method 10) fell to 64% with few discordant pairs, collapses to ``[0, 0]`` when every
      item ties with mixed outcomes, and excludes 0 at 4 discordant pairs of 100 where the
      exact test gives p = 0.125.
    """
    x, y = _as_pair(a, b)
    _check_confidence(confidence)
    if not (is_binary(x) and is_binary(y)):
        raise ValueError("paired_proportion_ci needs scores that are all 0 or 1")
    n = x.size
    nb = int(np.sum((x == 1) & (y == 0)))
    nc = int(np.sum((x == 0) & (y == 1)))
    discordant = nb + nc
    delta = (nb - nc) / n
    psi_low, psi_high = _clopper_pearson(discordant, n, confidence)
    if discordant == 0:
        return delta, -psi_high, psi_high
    theta_low, theta_high = _clopper_pearson(nb, discordant, confidence)
    g_low, g_high = 2.0 * theta_low - 1.0, 2.0 * theta_high - 1.0
    low = psi_low * g_low if g_low >= 0 else psi_high * g_low
    high = psi_high * g_high if g_high >= 0 else psi_low * g_high
    return delta, float(low), float(high)


def is_binary(scores: ArrayLike) -> bool:
    """True if every score is 0 or 1 (bools count). Empty input is not binary:
    there is no evidence the metric is an accuracy-style 0/1 score."""
    arr = np.asarray(scores)
    if arr.size == 0:
        return False
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError):
        return False
    return bool(np.all((arr == 0.0) | (arr == 1.0)))


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
