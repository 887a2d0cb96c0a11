"""What `lorastudy check` says about equivalence: for each headline comparison between two
trained methods and each task's primary metric, how many evaluation items and training seeds
would decide "equivalent within +-m" at the study's margin (results.planning has the
arithmetic), from the variance the study's last finished run measured or, before one, from a
stated assumption."""

from __future__ import annotations

from .. import methods, tasks
from ..report.format import integer, margin, number
from ..results import planning
from ..results.tables import comparisons_made, headline_pairs
from ..study.paths import StudyPaths
from ..study.schema import StudyConfig


def _comparison_count(cfg: StudyConfig) -> int:
    compared = sum(sum(m.compared for m in tasks.get(t.name, cfg).metrics) for t in cfg.tasks)
    return len(comparisons_made(cfg)) * compared


def _line(v: planning.Variance, m: float, level: float) -> str:
    needs = []
    for runs in planning.SEEDS_SHOWN:
        n = planning.items_needed(v, runs, m, level)
        needs.append(f"{runs} seeds: {'no number of items' if n is None else integer(n) + ' items'}")
    fewest = planning.fewest_seeds(v, m, level)
    least = f"at least {fewest} seeds" if fewest is not None else f"more than {planning.MAX_SEEDS} seeds"
    return f"{'; '.join(needs)} ({least} with enough items)"


def equivalence_plan(cfg: StudyConfig) -> str:
    """Lines for `lorastudy check`: one per trained pair and task."""
    paths = StudyPaths(cfg.resolve("."), cfg.study)
    finished = planning.comparisons_file(paths.results)
    pairs = [(a, b) for a, b in headline_pairs(cfg) if methods.get(a, cfg).trains and methods.get(b, cfg).trains]
    if not pairs:
        return "equivalence: the study compares no two trained methods, so no margin applies"
    count = len(finished) if finished is not None else _comparison_count(cfg)
    level = cfg.report.alpha / count
    a_ = planning.ASSUMED
    lines = [
        f'equivalence at the study\'s margin: items and seeds for 80% power to decide "equivalent" if the methods '
        f"do not differ, at the strictest Holm level of {count} comparisons (alpha {number(level, 4)}), from "
        + (
            f"the variance measured in {paths.results / 'comparisons.csv'}"
            if finished is not None
            else f"an assumption (no finished run yet): the methods disagree on {a_['item_var'] + a_['resid_var']:.0%} "
            f"of items, half of it whatever the seed, and each method's score has a seed-to-seed sd of "
            f"{number(a_['seed_sd'])}"
        )
    ]
    for a, b in pairs:
        for t in cfg.tasks:
            task = tasks.get(t.name, cfg)
            m = cfg.report.margin(t.name)
            v = planning.assumed()
            if finished is not None:
                hit = finished[
                    (finished.method_a == a)
                    & (finished.method_b == b)
                    & (finished.task == t.name)
                    & (finished.metric == task.primary)
                ]
                v = planning.measured(hit.iloc[0]) if len(hit) else v
            lines.append(f"  {a} vs {b}, {t.name} {task.primary} within {margin(m)} ({v.source}): {_line(v, m, level)}")
    return "\n".join(lines)
