"""The report's sections on the method space, in Markdown, from method_space's tables: what
each method is and how it is built, the verdicts of the comparisons outside the executive
summary, the declared decompositions (quantization or precision; training or running under
quantization), the grid, and why quantization costs what it costs. A section that does not
apply to a study is left out (an empty string), never shown empty."""

from __future__ import annotations

import math

import pandas as pd

from .. import methods, tasks
from ..quantization.formats import FORMATS, format_of
from ..results.method_space import (
    decomposition_table,
    decompositions,
    grid_table,
    pareto_table,
    primary_metrics,
    quantization_by,
    quantized_methods,
)
from ..results.tables import StudyResults, comparisons_made, headline_pairs
from . import verdicts
from .charts import label
from .format import interval, number
from .markdown import code, escape, table
from .recommendation import MEANINGFUL_SAVING_PCT
from .summary import verdict_table


def _value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)


def overview(res: StudyResults) -> str:
    """The methods of the study, what each trains, on which base, with which settings changed."""
    rows = []
    for name in res.methods:
        m = methods.get(name, res.cfg)
        settings = m.settings(res.cfg)
        changed = ", ".join(
            f"{key} = {escape(_value(getattr(getattr(settings, key.split('.')[0]), key.split('.')[1])))}"
            for key in m.overrides
        )
        rows.append([code(name), label(name, res.cfg), escape(m.builds_text(res.cfg)), changed or "none"])
    return "\n".join(
        [
            "## The method space",
            "",
            "Each method is one declaration (`lorastudy.methods`): what it trains, the base it loads and the study "
            "settings it changes; every one is trained by the one training path and evaluated like the others.",
            "",
            table(["method", "title", "trains; base", "settings it changes"], rows, ["l", "l", "l", "l"]),
            *(["", front] if (front := front_sentence(res)) else []),
        ]
    )


def front_sentence(res: StudyResults) -> str:
    """Which trained methods no other beats on both primary score and peak training memory, per
    task, where more than two were trained (the Pareto chart draws them)."""
    data = pareto_table(res)
    if data.empty or data.method.nunique() <= 2:
        return ""
    fronts = "; ".join(
        f"{tasks.get(task, res.cfg).title}: {', '.join(label(m, res.cfg) for m in rows[rows.on_front].method)}"
        for task, rows in data.groupby("task", sort=False)
    )
    return (
        "On the Pareto front of primary score against peak training memory (no other trained method scored as well "
        f"with as little memory, on point estimates): {fronts}."
    )


def other_verdicts(res: StudyResults) -> str:
    """The verdicts of the comparisons the executive summary does not state."""
    headline = set(headline_pairs(res.cfg))
    others = [(a, b) for a, b, _ in comparisons_made(res.cfg) if (a, b) not in headline]
    if not others:
        return ""
    rep = res.cfg.report
    claimed = [
        v.sentence
        for row, v in verdicts.primary_verdicts(res.comparisons, rep.alpha, rep.confidence, cfg=res.cfg)
        if (row["method_a"], row["method_b"]) in others and v.kind in verdicts.CLAIMS
    ]
    lines = [
        "### The other comparisons",
        "",
        verdict_table(res, others, "Each comparison's reason is in the Comparisons section, its every metric there."),
        "",
        f"Holm's correction counts these with the rest: all {len(res.comparisons)} comparisons of the study. "
        + (
            "The differences they detect:"
            if claimed
            else "None of them detects a difference on a primary metric at this n; the Comparisons section gives "
            "the difference each could have detected."
        ),
    ]
    return "\n".join(lines + [f"- {s}" for s in claimed])


def _cell(row: pd.Series, total_significant: bool) -> str:
    text = number(row.delta, signed=True)
    if row.kind == "cost":
        text = number(row.delta, 1, signed=True)
    elif row.tested and not pd.isna(row.ci_low):
        text += f" {interval(row.ci_low, row.ci_high)}" + ("*" if row.significant else "")
    elif not row.tested:
        text += " (not tested)"
    if total_significant and not pd.isna(row.share) and not math.isinf(row.share):
        text += f" ({number(100 * row.share, 0, signed=True).lstrip('+')}% of it)"
    return text


def _decomposition_caption(res: StudyResults, d: methods.Decomposition, untested: list[str], small: list[str]) -> str:
    text = (
        "Each path's parts add up to the total exactly; the two paths estimate each part with the other factor "
        "absent and present, so where they differ the factors interact. Scores: the difference of means with the "
        f"comparison's {res.cfg.report.confidence:.0%} interval (* Holm-significant). A part's share of the total "
        "is given where the total is itself significant, or, for a training cost (one run each: no interval), at "
        f"least {MEANINGFUL_SAVING_PCT:.0f}% of {label(d.total[1], res.cfg)}'s figure."
    )
    if untested:
        text += (
            f" No share for {', '.join(untested)}: there the total is not distinguishable from 0 after Holm's "
            "correction, so its parts are differences, not shares of a difference."
        )
    if small:
        text += (
            f" No share for {', '.join(small)}: the total is under {MEANINGFUL_SAVING_PCT:.0f}% of "
            f"{label(d.total[1], res.cfg)}'s figure, within what one run's measurement can move."
        )
    note = d.note(res.cfg)
    return text + (f" {note}" if note else "")


def decomposition_sections(res: StudyResults) -> str:
    """Each declared decomposition the study can make: the total, each path's parts, their shares."""
    table_rows = decomposition_table(res)
    parts = []
    for d in decompositions(res):
        rows = table_rows[table_rows.decomposition == d.name]
        header = ["measure", f"total: {label(d.total[0], res.cfg)} \u2212 {label(d.total[1], res.cfg)}"]
        header += [
            f"path {n}: {p.label} ({label(p.a, res.cfg)} \u2212 {label(p.b, res.cfg)})"
            for n, path in enumerate(d.paths, 1)
            for p in path
        ]
        body, untested, small = [], [], []
        for measure, frame in rows.groupby("measure", sort=False):
            first = frame.iloc[0]
            cost = first.kind == "cost"
            # A cost's total is one run each: its parts are shares of it only where it is not negligible.
            meaningful = cost and abs(first.total) >= MEANINGFUL_SAVING_PCT / 100 * abs(first.base_value)
            significant = bool(first.total_significant) or meaningful
            total = number(first.total, 1 if cost else 3, signed=True)
            body.append([escape(measure), total] + [_cell(r, significant) for _, r in frame.iterrows()])
            if not significant:
                (small if cost else untested).append(escape(measure))
        parts += [
            f"### {d.title}",
            "",
            d.question,
            "",
            table(header, body, ["l"] * len(header)),
            "",
            _decomposition_caption(res, d, untested, small),
            "",
        ]
    return "\n".join(parts)


def grid_section(res: StudyResults) -> str:
    data = grid_table(res)
    if data.empty:
        return ""
    settings = list(res.cfg.grid.settings)
    header = ["method", *settings, "trainable parameters", "peak training memory (MB)"]
    header += [f"{tasks.get(t, res.cfg).title} {m}" for t, m in primary_metrics(res)]
    rows = []
    for r in data.to_dict("records"):
        cells = [label(r["method"], res.cfg)] + [escape(r[k]) for k in settings]
        cells += [f"{int(r['trainable_params']):,}", f"{r['peak_memory_mb']:,.1f}"]
        for task, _ in primary_metrics(res):
            low, high = r.get(f"{task}.ci_low"), r.get(f"{task}.ci_high")
            cells.append(f"{number(r.get(f'{task}.value'))} {interval(low, high, signed=False)}")
        rows.append(cells)
    crossed = ", ".join(label(m, res.cfg) for m in res.cfg.grid.methods)
    return "\n".join(
        [
            f"### The grid: {', '.join(settings)} crossed with {crossed}",
            "",
            "Each cell is an ordinary run of its method with the grid's settings there, compared with the method at "
            "the study's own settings and, at the same cell, with the crossed methods that method is compared with "
            "(the verdicts are in the tables above).",
            "",
            table(header, rows, ["l", "l", "r", "r", "l"] + ["r"] * (len(header) - 5)),
        ]
    )


def quantization_formats(res: StudyResults) -> str:
    """Each format's error and bytes over every linear layer, by layer type, and what they imply."""
    if res.quantization.empty:
        return ""
    overall, by_type = quantization_by(res, None).set_index("format"), quantization_by(res, "type")
    used = {}
    for name in res.methods:
        if methods.get(name, res.cfg).quantize:
            used.setdefault(format_of(methods.get(name, res.cfg).settings(res.cfg).quant), []).append(
                label(name, res.cfg)
            )
    rows = [
        [
            f.title,
            f"{overall.loc[f.name].relative_error:.4f}",
            f"{overall.loc[f.name].bits_per_weight:.3f}",
            f"{overall.loc[f.name].stored_bytes / 2**20:,.2f}",
            ", ".join(used.get(f.name, [])) or "none",
        ]
        for f in FORMATS
    ]
    types = list(dict.fromkeys(by_type.group))
    type_rows = [
        [escape(t)]
        + [f"{by_type[(by_type.group == t) & (by_type.format == f.name)].relative_error.iloc[0]:.4f}" for f in FORMATS]
        for t in types
    ]
    first = overall.iloc[0]
    summary = res.quantization_summary
    return "\n".join(
        [
            "## Why quantization costs what it costs",
            "",
            f"Every linear layer a quantizer converts ({int(first.layers)} layers, {int(first.weights):,} weights, "
            f"read from the checkpoint in {escape(summary.get('dtype', res.cfg.model.dtype))}) stored in each format "
            "bitsandbytes offers, and its relative reconstruction error \u2016W \u2212 dequant(quant(W))\u2016_F / "
            "\u2016W\u2016_F, pooled over the layers (a layer weighs by its size). Bits per weight count the block "
            f"constants (blocks of {summary.get('blocksize', 64)} weights for 4 bits; one float32 scale per row for "
            "LLM.int8).",
            "",
            table(
                ["format", "relative error", "bits per weight", "stored (MB)", "methods on it"],
                rows,
                ["l", "r", "r", "r", "l"],
            ),
            "",
            _format_sentences(overall),
            "",
            "By layer type:",
            "",
            table(["layer type"] + [f.title for f in FORMATS], type_rows),
        ]
    )


def _format_sentences(overall: pd.DataFrame) -> str:
    e, b = overall.relative_error, overall.bits_per_weight
    return (
        f"FP4's error is {e['fp4'] / e['nf4']:.2f} times NF4's on these weights (NF4's levels are spaced for "
        f"normally distributed weights). Double quantization changes NF4's error by "
        f"{number(100 * (e['nf4-dq'] / e['nf4'] - 1), 2, signed=True)}% and saves "
        f"{b['nf4'] - b['nf4-dq']:.3f} bits per "
        f"weight. LLM.int8's error is {e['int8'] / e['nf4-dq']:.3f} times NF4 + DQ's, at {b['int8'] / b['nf4-dq']:.2f} "
        "times the bytes."
    )


def quantized_method_table(res: StudyResults) -> str:
    """Each quantized method's format and error beside its difference from the 16-bit method it is compared with."""
    data = quantized_methods(res)
    if data.empty:
        return ""
    conf = f"{res.cfg.report.confidence:.0%}"
    header = ["method", "format", "format's error", "error on the trained base", "against"]
    header += [f"\u0394 {tasks.get(t, res.cfg).title} {m}" for t, m in primary_metrics(res)]
    rows = []
    for r in data.to_dict("records"):
        cells = [label(r["method"], res.cfg), next(f.title for f in FORMATS if f.name == r["format"])]
        cells += [number(r["relative_error"], 4), number(r["trained_relative_error"], 4, "not trained")]
        partner = r["compared_with"]
        cells.append(label(partner, res.cfg) if isinstance(partner, str) else "no 16-bit method")
        for task, _ in primary_metrics(res):
            if f"{task}.delta" not in r:
                cells.append("n/a")
                continue
            star = "*" if r.get(f"{task}.significant") else ""
            bounds = interval(r[f"{task}.ci_low"], r[f"{task}.ci_high"])
            cells.append(f"{number(r[f'{task}.delta'], signed=True)} {bounds}{star}")
        rows.append(cells)
    return "\n".join(
        [
            "Each method on a quantized base, its format's error beside what it lost: \u0394 is the method minus the "
            f"first 16-bit method it is compared with, with the comparison's {conf} interval (* Holm-significant), so "
            "it is what training on that base cost (for a cross-evaluation, what running on it cost). The error on "
            "the trained base is the one its training step measured on the model it trained. A larger error need not "
            "mean a larger loss: read each \u0394 with its interval.",
            "",
            table(header, rows, ["l", "l", "r", "r", "l"] + ["r"] * (len(header) - 5)),
        ]
    )
