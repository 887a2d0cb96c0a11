"""Comparing methods trained with several seeds: a difference whose variance counts training
seeds and evaluation items, with a test and interval that hold their level at 2 to 5 seeds.

Bouthillier et al. (2021, "Accounting for variance in machine learning benchmarks") show that
the variance of a benchmark comparison has two main sources, the data sampled for evaluation
and the randomness of training (initialisation, data order, dropout), and that a comparison
estimating only the first claims differences that another run does not repeat. So the
difference of two methods' means over items and seeds, Delta, is given the variance

    V = v_items + sum over trained methods m of v_m,

* ``v_items``: the item-sampling variance of the per-item difference that persists across
  seeds, (MS_items - MS_residual) / (n S) from the seeds x items table of differences (the
  run-by-item noise is left to the run parts, so it is not counted twice);
* ``v_m``: method m's seed-to-seed variance of its mean score, divided by its number of runs
  (a method evaluated once, the untrained base, has none).

Each ``v_m`` rests on S_m - 1 degrees of freedom: 1 with two seeds. A t test on the
Welch-Satterthwaite degrees of freedom of V (the test this replaces) is anti-conservative
there: it trusts a seed variance that one degree of freedom estimated small. Here the item
part is taken as normal and the seed part as Student's t on S - 1 degrees of freedom (Hsu's
conservative choice for a sum of variances estimated apart), and the two are combined as
Behrens and Fisher combine two estimated variances,

    (Delta_hat - Delta) ~ sqrt(v_items) Z + sqrt(sum_m v_m) T_{S-1},

which Robinson (1976) showed conservative for two estimated variances. p-values are its
two-sided tail at |Delta_hat|, intervals its quantiles; both come from one function, so an
interval excludes 0 exactly when the test rejects at its level. The tests in
``tests/results/test_seed_calibration.py`` measure its false-positive rate and power at 2, 3
and 5 seeds with and without a seed effect. Functions broadcast over leading axes, so the
simulation runs thousands of studies at once.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as _st
from scipy.special import gammaln

# Points of the quadrature over the chi-square variable behind T_k (see _chi2_grid); 400
# reproduces scipy's adaptive quadrature to 5 significant digits down to p = 1e-5.
GRID_POINTS = 400


def _mean_squares(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grand mean, item mean square and residual mean square of a (..., seeds, items) table."""
    seeds, n = d.shape[-2:]
    grand = d.mean(axis=(-2, -1))
    by_item, by_seed = d.mean(axis=-2), d.mean(axis=-1)
    ms_items = seeds * ((by_item - grand[..., None]) ** 2).sum(-1) / (n - 1)
    resid = d - by_item[..., None, :] - by_seed[..., :, None] + grand[..., None, None]
    ms_resid = (resid**2).sum((-2, -1)) / max((seeds - 1) * (n - 1), 1)
    return grand, ms_items, ms_resid


def _run_part(x: np.ndarray) -> np.ndarray:
    """A method's seed-to-seed variance of its mean score over runs, divided by its runs."""
    runs = x.shape[-2]
    if runs < 2:
        return np.zeros(x.shape[:-2])
    return x.mean(axis=-1).var(axis=-1, ddof=1) / runs


def variance_components(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Delta = mean(a) - mean(b) and its variance by source, for (..., runs, items) scores.

    Runs of the two methods are matched by position (seed s of both) only to separate what
    persists across seeds from run-by-item noise; the run parts are each method's own, so
    whatever correlation the shared seed gives two runs, the variance is not understated.
    Also returns the per-unit figures a plan for another number of items and seeds needs:
    ``item_var`` (per item, persisting across seeds), ``resid_var`` (per item and run) and
    ``seed_var`` (per run, the run parts less their run-by-item noise).
    """
    runs = max(a.shape[-2], b.shape[-2])
    d = a - b  # broadcasts a method evaluated once against every run of the other
    n = d.shape[-1]
    delta, ms_items, ms_resid = _mean_squares(d)
    if runs > 1:
        item_var = np.maximum(ms_items - ms_resid, 0.0) / runs
    else:
        item_var, ms_resid = d.var(axis=-1, ddof=1)[..., 0], np.full_like(delta, np.nan)
    sides = [x for x in (a, b) if x.shape[-2] > 1]
    v_seeds = sum((_run_part(x) for x in sides), np.zeros_like(delta))
    # Hsu's choice: the degrees of freedom of the fewest runs a side has. Welch-Satterthwaite
    # degrees of freedom over the two sides gain power but exceed the level when one method's
    # seeds vary and the other's do not (measured in tests/results/test_seed_calibration.py).
    df = float(min((x.shape[-2] - 1 for x in sides), default=1))
    return {
        "delta": delta,
        "v_items": item_var / n,
        "v_seeds": v_seeds,
        "df_seeds": np.full_like(delta, df),
        "item_var": item_var,
        "resid_var": ms_resid,
        "seed_var": np.maximum(v_seeds * runs - ms_resid / n, 0.0) if runs > 1 else np.full_like(delta, np.nan),
    }


def _chi2_grid(df: np.ndarray, points: int = GRID_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes W and weights for E[g(W)], W ~ chi2(df), on a log scale: T_k's heavy
    tails come from small W, which a grid in W itself (or Gauss-Laguerre) misses."""
    df = np.asarray(df, dtype=float)[..., None]
    low = -2.0 * 46.0 / df - 5.0  # P(W < e^low) below 1e-20
    high = np.log(df + 60.0 * np.sqrt(2.0 * df) + 50.0)
    s = low + (high - low) * np.linspace(0.0, 1.0, points)
    log_density = (df / 2.0) * s - np.exp(s) / 2.0 - (df / 2.0) * math.log(2.0) - gammaln(df / 2.0)
    weights = np.exp(log_density)
    weights[..., [0, -1]] /= 2.0
    return np.exp(s), weights / weights.sum(axis=-1, keepdims=True)


def tail(x, v_items, v_seeds, df) -> np.ndarray:
    """P(|sqrt(v_items) Z + sqrt(v_seeds) T_df| >= x), broadcasting over its arguments."""
    x, v_items, v_seeds, df = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, v_items, v_seeds, df)))
    w, weight = _chi2_grid(df)
    var = v_items[..., None] + v_seeds[..., None] * df[..., None] / w
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(x)[..., None] / np.sqrt(var)
    z = np.where(var > 0, z, np.where(np.abs(x)[..., None] > 0, np.inf, 0.0))
    return np.clip((2.0 * _st.norm.sf(z) * weight).sum(axis=-1), 0.0, 1.0)


def half_width(level: float, v_items: float, v_seeds: float, df: float) -> float:
    """The half-width h of the interval Delta_hat +- h that the test at ``level`` inverts:
    tail(h) = level. 0 when there is no variance at all."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    scale = math.sqrt(v_items + v_seeds)
    if scale == 0.0:
        return 0.0
    # Bracketed between the normal's quantile and T_df's, the heavier of the two.
    low = _st.norm.isf(level / 2.0) * scale * 0.5
    high = _st.t.isf(level / 2.0, df) * scale * 2.0
    return float(optimize.brentq(lambda h: float(tail(h, v_items, v_seeds, df)) - level, low, high, xtol=1e-12))


def seed_test(a_runs: np.ndarray, b_runs: np.ndarray, *, confidence: float = 0.95) -> dict[str, Any]:
    """Test and interval for one comparison with several runs on at least one side (see the
    module's docstring). Returns what ``stats.compare_paired`` returns, with the variance by
    source (``v_items``, ``v_seeds``, ``seed_share``: the seeds' share of the variance of
    Delta) so the report can say where the uncertainty comes from. Where there is no variance
    at all (every item and run differs by the same amount) p and the interval are left to
    the caller (NaN)."""
    parts = {k: float(v) for k, v in variance_components(a_runs, b_runs).items()}
    delta, v_items, v_seeds, df = (parts[k] for k in ("delta", "v_items", "v_seeds", "df_seeds"))
    if v_items + v_seeds == 0:
        # The floored item part and equal run means leave nothing; the spread of the per-item
        # differences over items is then the only variance there is.
        v_items = float((a_runs - b_runs).mean(axis=-2).var(ddof=1)) / a_runs.shape[-1]
    total = v_items + v_seeds
    if total > 0:
        h = half_width(1.0 - confidence, v_items, v_seeds, df)
        p, low, high = float(tail(delta, v_items, v_seeds, df)), delta - h, delta + h
    else:
        p = low = high = float("nan")
    return {
        "delta": delta,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "se": math.sqrt(total),
        "df": df,
        **{k: parts[k] for k in ("v_items", "v_seeds", "item_var", "resid_var", "seed_var")},
        "seed_share": v_seeds / total if total > 0 else float("nan"),
        "seed_deltas": [float(v) for v in (a_runs - b_runs).mean(axis=-1)],
    }


def interval_at(level: float, delta: float, v_items: float, v_seeds: float, df: float) -> tuple[float, float]:
    """The interval the test at ``level`` inverts: it excludes 0 exactly when p < level."""
    h = half_width(level, v_items, v_seeds, df) if v_items + v_seeds > 0 else 0.0
    return delta - h, delta + h


def detectable(level: float, v_items: float, v_seeds: float, df: float, power: float = 0.8) -> float:
    """Smallest true difference the test at ``level`` detects with probability ``power``: the
    interval's half-width plus the distribution's one-sided ``power`` quantile."""
    if not v_items + v_seeds > 0:
        return float("nan")
    return half_width(level, v_items, v_seeds, df) + half_width(2.0 * (1.0 - power), v_items, v_seeds, df)
