"""How many evaluation items and training seeds a study needs to decide equivalence at its
margin: for each comparison between two trained methods, the variance the seeded test would
see with n items and S seeds, from the variance a finished run measured (comparisons.csv) or,
before the first run, from a stated assumption.

With the per-item variance that persists across seeds (``item_var``), the run-by-item noise
(``resid_var``) and the seed-to-seed variance of the difference's runs (``seed_var``), n items
and S seeds give Delta the variance parts

    v_items = item_var / n,   v_seeds = seed_var / S + resid_var / (n S),

on the distribution of ``results.seeds`` (T on S - 1 degrees of freedom). When the methods do
not differ, equivalence within +-m is decided with probability ``power`` when

    h(level) + h(1 - power) <= m,

h(x) being the two-sided x quantile of |Delta_hat - Delta|: the interval at the comparison's
Holm level must fit inside the margin around wherever Delta_hat falls. The level is the
strictest a Holm family of the study's size can ask, alpha over its number of comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import seeds

# Before any run: the two trained methods disagree on 20% of the items in a pair of runs (the
# variance of a 0/1 difference), half of it on the same items whatever the seed, and each
# method's score varies from seed to seed with a standard deviation of 0.02.
ASSUMED = {"item_var": 0.10, "resid_var": 0.10, "seed_sd": 0.02}
SEEDS_SHOWN = (2, 3, 5, 10, 20, 50)
MAX_ITEMS = 10_000_000
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Variance:
    item_var: float
    resid_var: float
    seed_var: float
    source: str  # where the figures come from, in words

    def parts(self, n: float, runs: int) -> tuple[float, float]:
        return self.item_var / n, self.seed_var / runs + self.resid_var / (n * runs)


def assumed(source: str = "assumed before the first run") -> Variance:
    per_run = 2.0 * ASSUMED["seed_sd"] ** 2  # the two methods' seed variances add up in their difference
    return Variance(ASSUMED["item_var"], ASSUMED["resid_var"], per_run, source)


def measured(row: pd.Series) -> Variance:
    """The variance a finished run measured for one comparison; with one seed its seed and
    residual variance are not measured, and the assumption stands in for them."""
    where = f"{int(row['n'])} items x {int(row['n_seeds'])} seeds"
    if int(row["n_seeds"]) > 1 and not pd.isna(row.get("seed_var")):
        return Variance(float(row["item_var"]), float(row["resid_var"]), float(row["seed_var"]), f"measured, {where}")
    # One run per method: the per-item variance is measured whole, its split and the seeds' are not.
    whole = float(row["item_var"])
    return Variance(whole / 2.0, whole / 2.0, assumed().seed_var, f"measured, {where}; seed variance assumed")


def decides(v: Variance, n: float, runs: int, margin: float, level: float, power: float) -> bool:
    v_items, v_seeds = v.parts(n, runs)
    df = float(runs - 1)
    return seeds.half_width(level, v_items, v_seeds, df) + seeds.half_width(1.0 - power, v_items, v_seeds, df) <= margin


def items_needed(v: Variance, runs: int, margin: float, level: float, power: float = 0.8) -> int | None:
    """Fewest items with which ``runs`` seeds decide equivalence; None when no number of items
    would (the seed variance alone is too large for that many seeds)."""
    if not decides(v, MAX_ITEMS, runs, margin, level, power):
        return None
    low, high = 1, MAX_ITEMS  # decides at high, not (or not known) at low
    while high - low > max(1, low // 100):  # to 1%: a plan, not a measurement
        middle = (low + high) // 2
        low, high = (low, middle) if decides(v, middle, runs, margin, level, power) else (middle, high)
    return high


def fewest_seeds(v: Variance, margin: float, level: float, power: float = 0.8) -> int | None:
    """Fewest seeds that decide equivalence with enough items; None beyond MAX_SEEDS."""
    for runs in range(2, MAX_SEEDS + 1):
        if decides(v, MAX_ITEMS, runs, margin, level, power):
            return runs
    return None


def comparisons_file(results_dir: Path) -> pd.DataFrame | None:
    path = results_dir / "comparisons.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    return table if {"item_var", "trained", "margin"} <= set(table.columns) else None
