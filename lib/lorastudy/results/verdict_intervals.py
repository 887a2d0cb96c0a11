"""The interval printed beside a verdict: at the comparison's Holm level, and from the same
test as its p-value, so that it excludes 0 exactly when the verdict is "better" or "worse"
(a percentile bootstrap beside a permutation test, or a 95% interval beside a Holm-level
verdict, can each tell another story than the test)."""

from __future__ import annotations

import numpy as np

from . import seeds
from .intervals import ArrayLike, identical_scores_ci, paired_proportion_ci
from .stats import _paired_runs, _ties, paired_permutation_p


def _permutation_interval(x: np.ndarray, y: np.ndarray, level: float, seed: int) -> tuple[float, float]:
    """The shifts d0 that the sign-flip test of (x - y - d0) does not reject at ``level``,
    found by bisection with the same random sign flips as the reported p-value. On the side
    of 0 the search is bracketed by 0 itself, so the interval excludes 0 exactly when that
    p-value is below the level, whatever the Monte Carlo noise elsewhere."""
    d = x - y
    centre = float(d.mean())
    reach = float(np.ptp(d)) + abs(centre) + 1.0  # shifted this far, every difference has one sign

    def accepted(shift: float) -> bool:
        return paired_permutation_p(x - shift, y, seed=seed) >= level

    def end(direction: float) -> float:
        inside, outside = centre, centre + direction * reach
        if accepted(outside):
            return outside  # the level is below the smallest p-value the resamples can give
        if (0.0 - centre) * direction > 0:  # 0 lies on this side: bracket by it
            inside, outside = (0.0, outside) if accepted(0.0) else (centre, 0.0)
        while abs(outside - inside) > 1e-5:
            middle = (inside + outside) / 2.0
            inside, outside = (middle, outside) if accepted(middle) else (inside, middle)
        return inside

    return end(-1.0), end(1.0)


def verdict_interval(
    a: ArrayLike,
    b: ArrayLike,
    *,
    test: str,
    level: float,
    seed: int = 0,
    scale: tuple[float, float] | None = (0.0, 1.0),
) -> tuple[float, float]:
    """The interval for mean(a) - mean(b) at confidence 1 - ``level`` that agrees with the
    comparison's test (:func:`compare_paired`) at ``level``: it excludes 0 exactly when the
    test's p-value is below ``level``. Printed beside a verdict at the comparison's Holm level,
    it excludes 0 exactly when the verdict is "better" or "worse"."""
    low, high = _unbounded_interval(a, b, test=test, level=level, seed=seed, scale=scale)
    if scale is None:
        return low, high
    # A difference of two scores on the scale lies within its width either way, yet an interval
    # can run past that: with few seeds the t quantile at a Holm level is large (about 18 at 2
    # degrees of freedom and alpha 0.003), and a permutation interval at a level below its
    # smallest p-value ends at its search bound. Cut there, which moves neither its relation to
    # 0 nor to a margin inside the scale.
    width = scale[1] - scale[0]
    return max(low, -width), min(high, width)


def _unbounded_interval(
    a: ArrayLike, b: ArrayLike, *, test: str, level: float, seed: int, scale: tuple[float, float] | None
) -> tuple[float, float]:
    """The interval from the comparison's own test, before the scale bounds it (the scale only
    sizes the interval where every item ties)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    runs_a, runs_b = _paired_runs(a, b)
    d = runs_a - runs_b
    ties = _ties(d.ravel())
    n = runs_a.shape[1]
    if ties == "all_tied":
        if scale is None:
            return float("nan"), float("nan")
        width = scale[1] - scale[0]
        return identical_scores_ci(0.0, n, confidence=1.0 - level, low=-width, high=width)
    if ties == "constant":
        return float(d.mean()), float(d.mean())
    if max(runs_a.shape[0], runs_b.shape[0]) > 1:
        r = seeds.seed_test(runs_a, runs_b)
        return seeds.interval_at(level, r["delta"], r["v_items"], r["v_seeds"], r["df"])
    if test == "mcnemar_exact":
        _, low, high = paired_proportion_ci(runs_a[0], runs_b[0], confidence=1.0 - level)
        return low, high
    return _permutation_interval(runs_a[0], runs_b[0], level, seed)
