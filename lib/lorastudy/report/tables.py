"""The report's detailed tables: scores per task, comparisons, costs and examples."""

from __future__ import annotations

import pandas as pd

from lorastudy import tasks
from lorastudy.report import verdicts
from lorastudy.report.charts import label
from lorastudy.report.comparison_text import comparisons_in_words
from lorastudy.report.markdown import escape, table
from lorastudy.results.tables import StudyResults, comparisons_made, headline_pairs

from .format import TESTS, interval, number, p_value, percent, test_name


def _interval_cell(r) -> str:
    """A metric's interval, or words where every item scored the same."""
    text = f"{number(r.value)} {interval(r.ci_low, r.ci_high, signed=False)}"
    if r.metric == "median_abs_error":
        seeds = f" \u00d7 {int(r.n_seeds)} seeds" if r.n_seeds > 1 else ", 1 seed"
        text += (
            f" (median of the {int(r.n)} outputs with a finite number: {int(r.n_items_with_value)} of "
            f"{int(r.n_items)} items{seeds})"
        )
        if r.identical:
            text += f"; all {int(r.n)} errors equal, so no interval"
        elif r.ci_low == r.ci_high:
            # Not every error is equal: enough of them are that every likely resample has that median.
            text += (
                f"; {int(r.n_at_value)} of the {int(r.n)} errors equal {number(r.value)}, so the bootstrap "
                "interval collapses to that value"
            )
    elif r.identical:
        text += f" (all {int(r.n)} items scored {number(r.value)})"
    if r.n_seeds > 1 and r.seed_sd is not None and not pd.isna(r.seed_sd):
        text += f", seed sd {number(r.seed_sd)}"
    return text


def _undefined_cell(res: StudyResults, method: str, task: str) -> str:
    outputs = len(res.method_runs(method)) * len(res.items[(res.runs[0].name, task)])
    return f"not defined (none of the {outputs} outputs had a finite number)"


def _token_limit_sentence(res: StudyResults) -> str:
    """How many outputs ran to the token limit, per generative task and method."""
    g = res.generation
    if g.empty:
        return ""
    parts = []
    for task, rows in g.groupby("task", sort=False):
        counts = ", ".join(
            f"{label(r.method, res.cfg)} {int(r.hit_token_limit)} of {int(r.outputs)}" for r in rows.itertuples()
        )
        parts.append(f"{tasks.get(task, res.cfg).title} ({int(rows.max_new_tokens.iloc[0])} tokens): {counts}")
    return (
        "Outputs that hit the token limit (no end token and no stop string within it), a truncated "
        "answer being scored as it stands: " + "; ".join(parts) + "."
    )


def _generation_rows(res: StudyResults, task: str) -> list[list[str]]:
    """Rows for a generative task's table: outputs that hit the token limit, and their length."""
    g = res.generation
    rows = g[g.task == task] if not g.empty else g
    if rows.empty:
        return []
    by_method = rows.set_index("method")
    limit = int(rows.max_new_tokens.iloc[0])

    def cell(method: str, text) -> str:
        return text(by_method.loc[method]) if method in by_method.index else "not recorded"

    return [
        [f"outputs that hit the {limit}-token limit \u2193"]
        + [
            cell(m, lambda r: f"{int(r.hit_token_limit)} of {int(r.outputs)} ({r.hit_token_limit_share:.0%})")
            for m in res.methods
        ],
        ["generated tokens, median"] + [cell(m, lambda r: f"{r.median_generated_tokens:,.0f}") for m in res.methods],
    ]


def performance_tables(res: StudyResults) -> str:
    conf = f"{res.cfg.report.confidence:.0%}"
    parts = ["## Performance by dataset", "", f"Each cell: the score with its {conf} interval (how: below the tables)."]
    m = res.metrics
    for t in res.cfg.tasks:
        task = tasks.get(t.name, res.cfg)
        rows = []
        for metric in task.metrics:
            cells = []
            for method in res.methods:
                hit = m[(m.method == method) & (m.task == t.name) & (m.metric == metric.name)]
                cells.append(_undefined_cell(res, method, t.name) if hit.empty else _interval_cell(hit.iloc[0]))
            heading = f"{metric.name} {_arrow(metric.higher_is_better)}" + (" (primary)" if metric.primary else "")
            rows.append([heading] + cells)
        rows += _generation_rows(res, t.name)
        n = len(res.items[(res.runs[0].name, t.name)])
        parts += [
            "",
            f"### {task.title} (n = {n})",
            "",
            table(["metric"] + [label(x, res.cfg) for x in res.methods], rows),
            "",
            "; ".join(f"*{x.name}*: {x.description}" for x in task.metrics) + ".",
        ]
        # Tasks whose scorer records how each answer was found (OpenMath) show the shares.
        if any("answer_source" in it for it in res.items[(res.runs[0].name, t.name)]):
            parts += ["", answer_sources_table(res, t.name)]
    limits = _token_limit_sentence(res)
    parts += ["", limits] if limits else []
    how = (
        f"The intervals: exact (Clopper\u2013Pearson) for a 0/1 metric of one run; otherwise a percentile bootstrap "
        f"over items ({res.cfg.report.bootstrap_resamples:,} resamples; with several seeds, each item's score is its "
        "mean over seeds, and a median resamples items with all their seeds). Where every item scored the same, the "
        "interval bounds the share of items that could score otherwise instead of collapsing to a point. "
        "\u2191 higher is better, \u2193 lower is better. Fractions are shown as fractions (0 to 1)."
    )
    return "\n".join([*parts, "", how])


ANSWER_SOURCE_LABELS = {
    "boxed": "\\boxed{}",
    "answer_is": '"the answer is" / "####"',
    "last_number": "last number",
    "none": "no number",
}


def answer_sources_table(res: StudyResults, task: str) -> str:
    """How each method's answers were found, as shares of its outputs (all seeds)."""
    rows = []
    for method in res.methods:
        items = [it for r in res.method_runs(method) for it in res.items[(r.name, task)]]
        sources = [it.get("answer_source") for it in items]
        if any(s is None for s in sources):
            return "How answers were found is not recorded for every method; rerun the evaluation with --force."
        counts = {s: sources.count(s) for s in ANSWER_SOURCE_LABELS}
        cells = [f"{100 * counts[s] / len(items):.0f}% ({counts[s]})" for s in ANSWER_SOURCE_LABELS]
        rows.append([label(method, res.cfg)] + cells + [str(sum(bool(it.get("non_finite")) for it in items))])
    header = ["method"] + list(ANSWER_SOURCE_LABELS.values()) + ["too large for a float"]
    return "\n".join(
        [
            table(header, rows),
            "",
            "Where each output's final answer was read, in the order the rules are tried: the last "
            "\\boxed{} (its content only: an empty box or one that holds no number is no answer), the number "
            'after "the answer is" or "####", then the last number in the text. A number too large for a float '
            "is not graded and counts as no answer.",
        ]
    )


def comparisons_table(res: StudyResults) -> str:
    c = res.comparisons
    if c.empty:
        return "## Comparisons\n\nOnly one method: nothing to compare."
    rep = res.cfg.report
    seeded = bool((c["n_seeds"] > 1).any())
    rows = []
    for _, r in c.iterrows():
        v = verdicts.verdict(r, rep.alpha, rep.confidence, cfg=res.cfg)
        row = [
            f"{tasks.get(r.task, res.cfg).title}",
            f"{r.metric} {_arrow(r.higher_is_better)}",
            f"{label(r.method_a, res.cfg)} \u2212 {label(r.method_b, res.cfg)}",
            number(r.delta),
            _difference_interval(r),
            p_value(r.p_value, bare=True),
            p_value(r.p_holm, bare=True),
            test_name(r.test),
            f"{r.alpha_effective:.2g}",
            _mdd_cell(r, res.cfg),
            str(int(r.n)),
        ]
        if seeded:
            row.append(f"{number(r.seed_delta_min)} to {number(r.seed_delta_max)}")
            row.append("n/a" if pd.isna(r.seed_share) else f"{percent(r.seed_share)} / {percent(1 - r.seed_share)}")
        rows.append(row + [_difference_interval(r, "verdict_ci_low", "verdict_ci_high"), v.words])
    header = ["task", "metric", "A \u2212 B", "\u0394", "95% CI", "p", "p (Holm)", "test", "Holm level", "MDD", "n"]
    header += ["per-seed \u0394", "variance: seeds / items"] if seeded else []
    header += ["CI at the Holm level", "verdict"]
    align = ["l", "l", "l"] + ["r"] * 4 + ["l"] + ["r"] * (len(header) - 10) + ["r", "l"]
    return "\n".join(
        [
            "## Comparisons",
            "",
            comparisons_stated(res),
            "",
            _comparisons_caption(res),
            "",
            table(header, rows, align),
            "",
            comparisons_in_words(res),
        ]
    )


def _mdd_cell(r, cfg) -> str:
    if pd.isna(r.mdd):
        return "n/a (no spread)"
    if r.mdd >= 1.0 and tasks.get(r.task, cfg).metric(r.metric).is_fraction:
        return f"\u00b1{number(r.mdd)} (beyond \u00b11: none detectable)"
    return f"\u00b1{number(r.mdd)}"


def _difference_interval(r, low: str = "ci_low", high: str = "ci_high") -> str:
    if r.ties == "all_tied":
        return f"all {int(r.n)} tied {interval(r[low], r[high])}"
    if r.ties == "constant":
        return "none (every item differs equally)"
    return interval(r[low], r[high])


def _comparisons_caption(res: StudyResults) -> str:
    """What each row's test and interval are, built from the tests the rows use."""
    c, rep = res.comparisons, res.cfg.report
    metrics = {test: ", ".join(dict.fromkeys(c[c.test == test].metric)) for test in dict.fromkeys(c.test)}
    tests = "; ".join(f"{TESTS[test].description} for {names}" for test, names in metrics.items())
    return (
        f"Paired differences on the same items (method A \u2212 method B), {rep.confidence:.0%} intervals. Each "
        f"metric declares its test rather than having it guessed from its values: {tests}. p (Holm): adjusted "
        f"across all {len(c)} comparisons. Holm level: the level a comparison's own p must fall below to be "
        "significant after the correction. MDD: the difference detectable with 80% power at that level (a t "
        "approximation from the observed standard error of \u0394, or the seeded test's own distribution); n/a "
        "where every item differs by the same amount. Where every item ties, the interval bounds the share of items "
        "that could differ. CI at the Holm level: the interval the verdict rests on, from the same test at the "
        "comparison's Holm level, so it excludes 0 exactly when the verdict is better or worse"
        + (
            "; variance: the shares of \u0394's variance that come from the training seeds and from the items. "
            + SEEDED_WHY
            if bool((c["n_seeds"] > 1).any())
            else "."
        )
    )


# Why the test over seeds is the one it is (docs/design.md has the simulation behind it).
SEEDED_WHY = (
    "Why this test with several seeds: training randomness is a source of variance beside the items sampled "
    "(Bouthillier et al. 2021), so both are in it, and it holds its level with 2 to 5 seeds per method in the "
    "simulation of tests/results/test_seed_calibration.py, where a bootstrap over runs per task (Agarwal et al. "
    "2021) and a t test on Welch\u2013Satterthwaite degrees of freedom do not at 2 seeds; almost stochastic order "
    "(Dror et al. 2019) gives no interval, so it could not decide equivalence within a margin. The measured rates "
    "are in docs/design.md."
)


# Examples show each method's answer in a column: past this many methods, only the headline
# comparisons' methods, so the table stays readable (every output is in predictions/).
EXAMPLE_METHODS = 5


def examples(res: StudyResults, limit: int | None = None) -> str:
    """Items with each method's answer and the reference: those where the methods' primary
    scores differ first, then others, up to `limit` per task."""
    limit = res.cfg.report.examples if limit is None else limit
    parts = ["## Examples", ""]
    if limit == 0:
        return "\n".join(parts + ["No examples requested (report.examples is 0)."])
    shown_methods = res.methods
    if len(shown_methods) > EXAMPLE_METHODS:
        shown_methods = list(dict.fromkeys(m for pair in headline_pairs(res.cfg) for m in pair)) or res.methods
        parts += [
            f"The answers of {', '.join(label(m, res.cfg) for m in shown_methods)} "
            "(the executive summary's comparisons); "
            f"every method's outputs are in `runs/{escape(res.cfg.study)}/predictions/`.",
            "",
        ]
    first = {m: res.method_runs(m)[0].name for m in shown_methods}
    for t in res.cfg.tasks:
        primary = tasks.get(t.name, res.cfg).primary
        key = tasks.get(t.name, res.cfg).metric(primary).key
        items = {m: res.items[(run, t.name)] for m, run in first.items()}
        n = len(next(iter(items.values())))
        differing = [i for i in range(n) if len({items[m][i]["scores"][key] for m in shown_methods}) > 1]
        shown = (differing + [i for i in range(n) if i not in set(differing)])[:limit]
        # Only the first seed's outputs are shown, so the count is of those runs, and says so.
        runs = f" in seed {res.cfg.seeds[0]}'s runs" if len(res.cfg.seeds) > 1 else ""
        parts.append(
            f"### {tasks.get(t.name, res.cfg).title}: the methods' {primary} differs on {len(differing)} of {n} "
            f"items{runs}"
        )
        rows = []
        for i in shown:
            ref = items[shown_methods[0]][i]["references"]
            row = [escape(items[shown_methods[0]][i]["question"], 160)]
            row += [
                f"{escape(items[m][i]['output'], 120)} ({number(items[m][i]['scores'][key], 2)})" for m in shown_methods
            ]
            row += [escape(" | ".join(map(str, ref)), 80), "yes" if i in differing else "no"]
            rows.append(row)
        parts += [
            "",
            table(
                ["item"] + [f"{label(m, res.cfg)} ({primary})" for m in shown_methods] + ["reference", "differs"],
                rows,
                ["l"] * (len(shown_methods) + 3),
            ),
            "",
        ]
    return "\n".join(parts)


def _arrow(higher_is_better: bool) -> str:
    return "\u2191" if higher_is_better else "\u2193"


def comparisons_stated(res: StudyResults) -> str:
    """Which comparisons the report makes and why, from the methods' declarations: not every
    pair of methods, only those a declaration asks for."""
    made = comparisons_made(res.cfg)
    if not made:
        return ""
    k = len(res.methods)
    rows = [
        [
            f"{label(a, res.cfg)} vs {label(b, res.cfg)}",
            escape(c.reason),
            "executive summary" if c.headline else "the method space",
        ]
        for a, b, c in made
    ]
    return "\n".join(
        [
            f"Of the {k * (k - 1) // 2} pairs the study's {k} methods form, the report compares the {len(made)} that "
            "the methods' declarations ask for, each to answer one question; Holm's correction runs over every "
            f"metric of every one of them ({len(res.comparisons)} comparisons).",
            "",
            table(["comparison (A vs B)", "why: the question A \u2212 B answers", "stated in"], rows, ["l", "l", "l"]),
        ]
    )
