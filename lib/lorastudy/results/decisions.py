"""The decision each comparison reaches, as data the report puts in words: the interval at
the comparison's Holm level (``verdict_ci_low``, ``verdict_ci_high``), the equivalence margin
that applies, and the verdict itself.

Verdicts, in the order the rules are tried:

* ``cannot separate``: both methods scored every item at the metric's floor (0) or every item
  at its ceiling (1), in every run: the metric cannot tell them apart, whatever their training;
* ``better`` / ``worse``: Holm-adjusted p below alpha, in the metric's direction; the
  Holm-level interval then excludes 0, and only then;
* between two trained methods on a fraction metric: ``equivalent`` when the Holm-level interval
  lies inside (-m, m), which is the two one-sided tests against -m and +m at half that level
  each (the interval's two ends; the same interval decides every verdict, so words and
  interval never disagree), else ``inconclusive``;
* ``no detectable difference`` otherwise (a comparison with the untrained base).

With one training run per method a verdict between trained methods is ``provisional``: run-to-run
training variance is not in its test, and another seed may reverse it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import tasks
from . import seeds, stats
from .recorded import StudyResults
from .verdict_intervals import verdict_interval

VERDICTS = ("better", "worse", "equivalent", "inconclusive", "no detectable difference", "cannot separate")


def bound_reached(res: StudyResults, row: pd.Series) -> str:
    """ "floor" or "ceiling" when both methods scored every item at it in every run, else ""."""
    metric = tasks.get(row["task"], res.cfg).metric(row["metric"])
    if not metric.is_fraction:
        return ""
    scores = [res.run_scores(m, row["task"], row["metric"]) for m in (row["method_a"], row["method_b"])]
    for bound, name in ((0.0, "floor"), (1.0, "ceiling")):
        if all(np.all(s == bound) for s in scores):
            return name
    return ""


def verdict_of(row: pd.Series, alpha: float) -> str:
    if row["bound"]:
        return "cannot separate"
    if row["p_holm"] < alpha and row["delta"] != 0:
        improved = row["delta"] > 0 if row["higher_is_better"] else row["delta"] < 0
        return "better" if improved else "worse"
    if not np.isnan(row["margin"]):
        inside = -row["margin"] < row["verdict_ci_low"] and row["verdict_ci_high"] < row["margin"]
        return "equivalent" if inside else "inconclusive"
    return "no detectable difference"


def _interval(res: StudyResults, row: pd.Series) -> tuple[float, float]:
    metric = tasks.get(row["task"], res.cfg).metric(row["metric"])
    a, b = (res.run_scores(m, row["task"], row["metric"]) for m in (row["method_a"], row["method_b"]))
    scale = (0.0, 1.0) if metric.is_fraction else None
    return verdict_interval(a, b, test=metric.test, level=row["alpha_effective"], scale=scale)


def _mdd(row: pd.Series) -> float:
    """The detectable difference at the Holm level, from the distribution the test uses; none
    where every item ties or differs by the same amount (no spread to size it from)."""
    if row["ties"]:
        return float("nan")
    if row["test"] == stats.SEEDED_TEST:
        return seeds.detectable(row["alpha_effective"], row["v_items"], row["v_seeds"], row["df"])
    return stats.detectable_difference(row["se"], row["df"], alpha=row["alpha_effective"])


def decide(res: StudyResults, table: pd.DataFrame) -> pd.DataFrame:
    """Add each comparison's Holm-level interval, margin, verdict and detectable difference to
    a comparisons table that has its Holm-adjusted p-values and levels."""
    if table.empty:
        return table
    rep = res.cfg.report
    table = table.copy()
    table["mdd"] = [_mdd(row) for _, row in table.iterrows()]
    ends = [_interval(res, row) for _, row in table.iterrows()]
    table["verdict_ci_low"], table["verdict_ci_high"] = [e[0] for e in ends], [e[1] for e in ends]
    both_trained = table["trained"] == 2
    fraction = [tasks.get(t, res.cfg).metric(m).is_fraction for t, m in zip(table["task"], table["metric"])]
    table["margin"] = [
        rep.margin(task) if trained and frac else np.nan
        for task, trained, frac in zip(table["task"], both_trained, fraction)
    ]
    table["bound"] = [bound_reached(res, row) for _, row in table.iterrows()]
    table["verdict"] = [verdict_of(row, rep.alpha) for _, row in table.iterrows()]
    table["provisional"] = both_trained & (table["n_seeds"] == 1)
    return table
