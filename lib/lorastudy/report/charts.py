"""The report's charts, built from StudyResults with seaborn. Each returns (figure, caption);
a chart that does not apply returns (None, a caption that says why), so the report shows the
reason rather than an empty frame. Methods are named and coloured by their declarations."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from .. import methods, tasks
from ..results.method_space import grid_table, pareto_table, quantization_by
from ..results.tables import StudyResults
from ..study.schema import StudyConfig
from .recommendation import memory_kind_label

# More methods than this and a chart that names each point becomes unreadable.
CROWDED = 4


def label(method: str, cfg: StudyConfig | None = None) -> str:
    """How tables and charts name a method (`cfg`: the study, whose grid cells it may be)."""
    return methods.get(method, cfg).title


def _palette(cfg: StudyConfig) -> dict[str, str]:
    return {m.title: m.colour for m in [*methods.METHODS, *methods.cells(cfg).values()]}


def _style() -> None:
    sns.set_theme(style="whitegrid", context="notebook")


def _labelled(frame: pd.DataFrame, cfg: StudyConfig) -> pd.DataFrame:
    """Method names as the report shows them (LoRA, QLoRA), for legends and axes."""
    return frame.assign(method=frame["method"].map(lambda m: label(m, cfg)))


def chart_primary(res: StudyResults):
    _style()
    m = res.metrics[res.metrics["primary"]]
    names = [t.name for t in res.cfg.tasks]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    for ax, task in zip(axes[0], names):
        rows = m[m.task == task].set_index("method").loc[res.methods].reset_index()
        x = np.arange(len(rows))
        ax.bar(x, rows["value"], color=[methods.get(mm, res.cfg).colour for mm in rows["method"]], alpha=0.85)
        ax.errorbar(
            x,
            rows["value"],
            yerr=[rows["value"] - rows["ci_low"], rows["ci_high"] - rows["value"]],
            fmt="none",
            ecolor="black",
            capsize=5,
        )
        ax.set_xticks(x, [label(mm, res.cfg) for mm in rows["method"]])
        metric = tasks.get(task, res.cfg).primary
        ax.set_title(
            f"{tasks.get(task, res.cfg).title}\n{metric} "
            f"({'higher' if tasks.get(task, res.cfg).metric(metric).higher_is_better else 'lower'} is better)"
        )
        if tasks.get(task, res.cfg).metric(metric).is_fraction:
            ax.set_ylim(0, 1)  # a quantity on its own scale (a log-likelihood) keeps its own axis
    fig.tight_layout()
    caption = (
        f"Primary metric per task and method, with the {res.cfg.report.confidence:.0%} intervals of the tables "
        f"above (exact for a 0/1 metric of one run, bootstrap over items otherwise; n per task there)."
    )
    return fig, caption


def chart_score_vs_memory(res: StudyResults):
    _style()
    r = res.resources[res.resources.phase == "train"]
    if r.empty:
        return None, "No method was trained, so there is no training memory to plot."
    if len(r) > CROWDED:
        return None, (
            f"With {len(r)} trained methods, score against training memory is drawn per task under "
            '"The method space", with the Pareto front marked.'
        )
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
            label=f"{tasks.get(task, res.cfg).title} ({tasks.get(task, res.cfg).primary})",
        )
        for _, row in rows.iterrows():
            ax.annotate(
                label(row.method, res.cfg),
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


# The latency chart's panels: latency.csv's column and the axis it is drawn on.
LATENCY_PANELS = (
    ("latency_ms", "whole answer (ms)"),
    ("ttft_ms", "time to first token (ms)"),
    ("tpot_ms", "time per output token (ms)"),
)


def chart_latency(res: StudyResults):
    _style()
    if res.latency.empty:
        return None, "Latency was not measured (the study has no generation task)."
    data = _labelled(res.latency, res.cfg)
    order = [label(m, res.cfg) for m in res.methods]
    lengths = data["tokens"].dropna() if "tokens" in data.columns else pd.Series(dtype=float)
    tokens = int(lengths.iloc[0]) if len(lengths) else None
    fig, axes = plt.subplots(1, len(LATENCY_PANELS), figsize=(10, 1.0 + 0.5 * max(len(order), 3)), sharey=True)
    for ax, (column, axis) in zip(axes, LATENCY_PANELS):
        measured = data.dropna(subset=[column]) if column in data.columns else data.iloc[:0]
        if measured.empty:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        else:
            sns.boxplot(
                data=measured,
                x=column,
                y="method",
                order=order,
                hue="method",
                palette=_palette(res.cfg),
                ax=ax,
                fliersize=0,
                legend=False,
            )
            sns.stripplot(data=measured, x=column, y="method", order=order, color="black", size=4, ax=ax)
            ax.set_xlim(0, measured[column].max() * 1.1)
        # The fixed-length panels name their length on the axis too, so a copied chart keeps it.
        fixed = column != "latency_ms" and tokens is not None
        ax.set_xlabel(axis.replace(" (ms)", f" (ms; {tokens} tokens)") if fixed else axis)
        ax.set_ylabel("")
    fig.tight_layout()
    return fig, (
        f"Generation latency at batch size 1 on the first {res.cfg.eval.latency_items} {res.cfg.eval.latency_task} "
        "items (dots), with quartiles (boxes): each whole answer, whose length is the method's own, then "
        + (
            f"the time to first token and the time per output token generating exactly {tokens} tokens, which do "
            "not depend on how long a method's answers are."
            if tokens is not None
            else "the time to first token and per output token, not measured (evaluations recorded before them)."
        )
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
    # On a GPU, the device's memory throughout: what PyTorch allocated after each stage, then the peak.
    now = "rss" if kind == "cpu_rss" else "cuda_allocated"
    process = r.melt(
        id_vars="method",
        value_vars=[f"{now}_after_load_mb", f"{now}_after_prepare_mb", "peak_memory_mb"],
        var_name="stage",
        value_name="MB",
    )
    process["stage"] = process["stage"].map(
        {
            f"{now}_after_load_mb": "after load",
            f"{now}_after_prepare_mb": "after prep",
            "peak_memory_mb": "training peak",
        }
    )
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, data, label in (
        (axes[0], weights, "weights footprint (MB)"),
        (axes[1], process, "process RSS (MB)" if kind == "cpu_rss" else "GPU memory (MB)"),
    ):
        sns.barplot(data=_labelled(data, res.cfg), x="stage", y="MB", hue="method", palette=_palette(res.cfg), ax=ax)
        ax.set_ylabel(label)
        ax.set_xlabel("")
    # One legend, beside the bars rather than over them.
    axes[0].get_legend().remove()
    sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title=None, frameon=False)
    fig.tight_layout()
    return fig, (
        "Memory by stage. Left: bytes of the model's weights (parameters, buffers and quantization "
        "constants) after loading, after k-bit preparation (which upcasts non-quantized weights to fp32) "
        "and with the LoRA adapters. Right: "
        + (
            "the process's resident memory after loading, after preparation, and its peak while training."
            if kind == "cpu_rss"
            else "the GPU memory PyTorch had allocated after loading and after preparation, and the GPU's used "
            "memory at its peak while training (sampled; the allocator's cache and what it does not see included)."
        )
    )


def chart_seeds(res: StudyResults):
    _style()
    s = res.metrics_by_seed
    if s.empty or s.seed.nunique() < 2:
        return None, ""
    primary = s[s.apply(lambda row: row.metric == tasks.get(row.task, res.cfg).primary, axis=1)]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    sns.stripplot(
        data=_labelled(primary, res.cfg),
        x="task",
        y="value",
        hue="method",
        dodge=True,
        ax=ax,
        palette=_palette(res.cfg),
    )
    ax.set_ylabel("primary metric")
    fig.tight_layout()
    return fig, "Primary metric of each training seed (one dot per seed): the spread across seeds."


def chart_pareto(res: StudyResults):
    """Primary score against peak training memory, one panel per task, the Pareto front marked."""
    data = pareto_table(res)
    if data.empty or data.method.nunique() < 2:
        return None, "Fewer than two methods were trained, so there is no front of score against training memory."
    _style()
    names = [t.name for t in res.cfg.tasks]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 4.2), squeeze=False)
    for ax, task in zip(axes[0], names):
        rows = data[data.task == task].sort_values("peak_memory_mb")
        for row in rows.itertuples():
            ax.errorbar(
                row.peak_memory_mb,
                row.value,
                yerr=[[row.value - row.ci_low], [row.ci_high - row.value]],
                fmt="o",
                color=methods.get(row.method, res.cfg).colour,
                ecolor=methods.get(row.method, res.cfg).colour,
                elinewidth=0.8,
                alpha=0.9,
                capsize=2,
                markersize=9 if row.on_front else 6,
                markeredgecolor="black" if row.on_front else "none",
                label=label(row.method, res.cfg),
            )
        front = rows[rows.on_front]
        ax.step(front.peak_memory_mb, front.value, where="post", color="black", linewidth=1, linestyle="--")
        for row in front.itertuples():  # only the front is named on the chart; the legend names every colour
            ax.annotate(
                label(row.method, res.cfg), (row.peak_memory_mb, row.value), xytext=(5, 4), textcoords="offset points"
            )
        metric = tasks.get(task, res.cfg).primary
        ax.set_title(f"{tasks.get(task, res.cfg).title}\n{metric}")
        ax.set_xlabel("peak training memory (MB)")
    axes[0][0].set_ylabel("primary metric")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 * math.ceil(len(labels) / 5), 1, 1))
    fronts = "; ".join(
        f"{tasks.get(t, res.cfg).title}: "
        + ", ".join(label(m, res.cfg) for m in data[(data.task == t) & data.on_front].method)
        for t in names
    )
    return fig, (
        "Each trained method's primary score (with its interval) against its peak memory while training; the dashed "
        "line joins the Pareto front, the methods no other method beats on both (ringed). The front is drawn from "
        f"point estimates: a method off it may not be worse beyond noise. On the front: {fronts}. Methods that "
        "train nothing (the base, cross-evaluations) have no training memory and are not drawn."
    )


def chart_grid(res: StudyResults):
    """Score per task and peak training memory against the grid's first setting, one line per crossed method."""
    data = grid_table(res)
    if data.empty:
        return None, ""
    _style()
    setting = next(iter(res.cfg.grid.settings))
    others = [k for k in res.cfg.grid.settings if k != setting]
    names = [t.name for t in res.cfg.tasks]
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(3.8 * (len(names) + 1), 3.6), squeeze=False)
    for parent, rows in data.groupby("grid_method", sort=False):
        own = methods.get(parent, res.cfg).settings(res.cfg)
        for key in others:  # the first setting's line, the others at the method's own values
            rows = rows[rows[key] == getattr(getattr(own, key.split(".")[0]), key.split(".")[1])]
        rows = rows.sort_values(setting)
        style = dict(marker="o", color=methods.get(parent, res.cfg).colour, label=label(parent, res.cfg))
        for ax, task in zip(axes[0], names):
            ax.errorbar(
                rows[setting],
                rows[f"{task}.value"],
                yerr=[rows[f"{task}.value"] - rows[f"{task}.ci_low"], rows[f"{task}.ci_high"] - rows[f"{task}.value"]],
                capsize=3,
                **style,
            )
            ax.set_title(f"{tasks.get(task, res.cfg).title}: {tasks.get(task, res.cfg).primary}")
        axes[0][-1].plot(rows[setting], rows["peak_memory_mb"], **style)
        axes[0][-1].set_title("peak training memory (MB)")
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in data[setting])
    values = sorted(set(data[setting]))
    for ax in axes[0]:
        if numeric:  # ranks and learning rates are read on a log scale, ticked at the grid's values
            ax.set_xscale("log", base=2)
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
        ax.set_xlabel(setting)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    kept = f" (with {', '.join(others)} at each method's own value)" if others else ""
    return fig, (
        f"Primary score per task (with its interval) and peak training memory against {setting}{kept}, one line per "
        "method crossed with the grid; each point is an ordinary run."
    )


def chart_quantization(res: StudyResults):
    """Where quantization's error sits: by depth and by layer type per format, and bits per weight against error."""
    if res.quantization.empty:
        return None, ""  # no method quantizes its base: the report has no such section
    _style()
    by_depth, by_type, overall = (quantization_by(res, k) for k in ("depth", "type", None))
    # One colour per format in every panel, one legend for the three.
    colours = dict(zip(overall.title, sns.color_palette("tab10", len(overall))))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), gridspec_kw={"width_ratios": [1.2, 1.4, 1]})
    for fmt, rows in by_depth.groupby("title", sort=False):
        axes[0].plot(rows.group, rows.relative_error, marker="o", markersize=3, color=colours[fmt], label=fmt)
    axes[0].set_xlabel("block (depth)")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("relative reconstruction error")
    sns.barplot(data=by_type, x="group", y="relative_error", hue="title", palette=colours, ax=axes[1], legend=False)
    axes[1].set_xlabel("layer type")
    axes[1].set_ylabel("")
    axes[1].tick_params(axis="x", rotation=30)
    for row in overall.itertuples():
        axes[2].scatter(row.bits_per_weight, row.relative_error, s=45, color=colours[row.title])
    axes[2].set_xlabel("bits stored per weight")
    axes[2].set_ylabel("relative reconstruction error")
    axes[2].set_yscale("log")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="center right", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    return fig, (
        "Relative reconstruction error \u2016W \u2212 dequant(quant(W))\u2016_F / \u2016W\u2016_F of every linear "
        "layer a quantizer converts, pooled by block (left) and by layer type (middle) for each bitsandbytes format, "
        "and each format's pooled error against the bits it stores per weight, constants included (right, log scale)."
    )
