"""The Comparisons section's text beside its table: what the training seeds change, how a
verdict is reached, and each executive-summary comparison in a sentence."""

from __future__ import annotations

from .. import methods, tasks
from ..results.tables import StudyResults, headline_pairs, pairs
from . import verdicts
from .format import margin


def seeds_sentence(res: StudyResults) -> str:
    """What the training seed changes, and how many each trained method ran with."""
    seeds = res.cfg.seeds
    runs = f"{len(seeds)} training seeds ({', '.join(map(str, seeds))})" if len(seeds) > 1 else f"one seed ({seeds[0]})"
    once = [methods.get(m, res.cfg).in_text for m in res.methods if len(res.method_runs(m)) == 1 and len(seeds) > 1]
    return (
        f"Each trained method ran with {runs}. A seed sets the adapter's initialisation, the dropout masks and "
        "the order of the training batches; the training and evaluation items (data.seed) and greedy decoding do "
        "not depend on it"
        + (f", so {', '.join(once)} {'is' if len(once) == 1 else 'are'} evaluated once." if once else ".")
        + (
            " With one run per trained method, its seed-to-seed spread is not measured and verdicts between "
            "trained methods are provisional."
            if len(seeds) == 1
            else ""
        )
    )


def _margins(res: StudyResults) -> str:
    cfg = res.cfg
    return ", ".join(f"{tasks.get(t.name, cfg).title} {margin(cfg.report.margin(t.name))}" for t in cfg.tasks)


def rules(res: StudyResults) -> str:
    """How the verdicts are reached, in full (the Comparisons section states it)."""
    rep = res.cfg.report
    others = len(pairs(res.cfg)) - len(headline_pairs(res.cfg))
    return (
        f'Verdicts use each task\'s primary metric; "better" and "worse" need a Holm-adjusted p below '
        f"{rep.alpha} across all {len(res.comparisons)} comparisons in this study. Between two trained methods a "
        f'difference within the task\'s margin ({_margins(res)}) counts as none: "equivalent" needs the whole '
        "Holm-level interval inside it (two one-sided tests at half that level each), and an interval that crosses "
        "it leaves the verdict inconclusive. No average across tasks is formed: the tasks' metrics differ in meaning."
        + (
            f" The study makes {others} further comparisons of its method space, each stated with its reason "
            'and verdict under "The method space" below.'
            if others
            else ""
        )
    )


def comparisons_in_words(res: StudyResults) -> str:
    """What the training seeds change, how verdicts are reached, and each executive-summary
    comparison in a sentence: the Comparisons section's text beside its table."""
    rep = res.cfg.report
    headline = headline_pairs(res.cfg)
    stated = [
        v.sentence
        for row, v in verdicts.primary_verdicts(res.comparisons, rep.alpha, rep.confidence, cfg=res.cfg)
        if (row["method_a"], row["method_b"]) in headline
    ]
    lines = [seeds_sentence(res), "", rules(res)]
    if stated:
        lines += ["", "Each comparison of the executive summary, in words:", ""] + [f"- {s}" for s in stated]
    return "\n".join(lines)
