"""Statistics for comparing fine-tuning methods on per-item evaluation scores.

Every method is scored on the same evaluation items, so comparisons are
*paired*: we resample or permute items, never the two methods independently.

The heavy lifting is delegated to SciPy (``bootstrap``, ``binomtest``,
``permutation_test``, ``norm``); only what SciPy lacks is written here: the
Holm step-down correction and the minimum detectable difference.

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
    "bootstrap_ci",
    "paired_bootstrap_ci",
    "mcnemar_exact",
    "paired_permutation_p",
    "holm",
    "is_binary",
    "compare_paired",
    "min_detectable_difference",
    "seed_summary",
]

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


def compare_paired(
    a: ArrayLike,
    b: ArrayLike,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare method ``a`` with method ``b`` on the same items.

    Returns ``delta`` (= mean(a) - mean(b)), its paired bootstrap interval
    ``ci_low``/``ci_high``, and ``p_value`` from the test named in ``test``:
    exact McNemar for 0/1 scores (the standard, exact test for paired
    accuracies), otherwise a paired permutation test, which needs no normality
    assumption. ``n_resamples`` sizes the bootstrap only; the permutation test
    keeps its own larger default so small p-values are resolved.
    """
    x, y = _as_pair(a, b)
    delta, lo, hi = paired_bootstrap_ci(x, y, n_resamples=n_resamples, confidence=confidence, seed=seed)
    if is_binary(x) and is_binary(y):
        p, test = mcnemar_exact(x, y), "mcnemar_exact"
    else:
        p, test = paired_permutation_p(x, y, seed=seed), "paired_permutation"
    return {"delta": delta, "ci_low": lo, "ci_high": hi, "p_value": p, "test": test}


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
