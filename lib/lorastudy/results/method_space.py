"""Tables of the method space, from recorded results: the declared decompositions of a
difference between two methods into parts, the grid's cells against their settings, the
Pareto front of primary score against peak training memory, and quantization's error by
format, layer type and depth beside what each quantized method lost. Reads StudyResults
only; the report's words on them are in method_report.py, their charts in charts.py.

Written to results/ beside the contract tables: decompositions.csv, grid.csv, pareto.csv,
quantization_formats.csv and quantization_layers.csv.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .. import methods, tasks
from ..quantization.formats import FORMATS, format_of, pooled
from ..util.files import atomic_path
from .tables import StudyResults

# The training costs a decomposition splits too, where every method in it trains: resources.csv's column and its name.
COSTS = {
    "peak_memory_mb": "peak training memory (MB)",
    "training_weights_mb": "weights while training (MB)",
    "wall_s": "training time (s)",
}


def primary_metrics(res: StudyResults) -> list[tuple[str, str]]:
    return [(t.name, tasks.get(t.name, res.cfg).primary) for t in res.cfg.tasks]


def paired(res: StudyResults, a: str, b: str, task: str, metric: str) -> dict:
    """a − b on one metric: from the comparison the study made (either way round, its interval
    and Holm-adjusted p turned with it), else the difference of the two means, untested."""
    c = res.comparisons
    for x, y, sign in ((a, b, 1.0), (b, a, -1.0)):
        hit = c[(c.method_a == x) & (c.method_b == y) & (c.task == task) & (c.metric == metric)] if len(c) else c
        if len(hit):
            row = hit.iloc[0]
            low, high = sorted((sign * row.ci_low, sign * row.ci_high))
            return {
                "delta": sign * row.delta,
                "ci_low": low,
                "ci_high": high,
                "p_holm": row.p_holm,
                "significant": bool(row.significant),
                "tested": True,
            }
    m = res.metrics
    value = {x: m[(m.method == x) & (m.task == task) & (m.metric == metric)].value for x in (a, b)}
    delta = float(value[a].iloc[0] - value[b].iloc[0]) if len(value[a]) and len(value[b]) else float("nan")
    nan = float("nan")
    return {"delta": delta, "ci_low": nan, "ci_high": nan, "p_holm": nan, "significant": False, "tested": False}


def decompositions(res: StudyResults) -> list[methods.Decomposition]:
    """The declared decompositions whose methods are all in the study."""
    return [d for d in methods.DECOMPOSITIONS if d.methods <= set(res.methods)]


def training_cost(res: StudyResults, method: str, column: str) -> float:
    r = res.resources
    row = r[(r.method == method) & (r.phase == "train")]
    if row.empty:
        return float("nan")
    row = row.iloc[0]
    if column == "training_weights_mb":
        prepared = row.get("weights_after_prepare_mb")
        return float(prepared) if prepared is not None and not pd.isna(prepared) else float(row["weights_mb"])
    return float(row[column])


def _rows(res: StudyResults, d: methods.Decomposition, measures: list[tuple[str, str, str]]) -> list[dict]:
    rows = []
    for kind, key, name in measures:
        total = _difference(res, kind, key, *d.total)
        for number, path in enumerate(d.paths, 1):
            for part in path:
                delta = _difference(res, kind, key, part.a, part.b)
                share = delta["delta"] / total["delta"] if total["delta"] != 0 else float("nan")
                rows.append(
                    {
                        "decomposition": d.name,
                        "measure": name,
                        "kind": kind,
                        "path": number,
                        "part": part.label,
                        "method_a": part.a,
                        "method_b": part.b,
                        **delta,
                        "total": total["delta"],
                        "total_significant": total["significant"],
                        # The compared-with method's own figure, for a cost (how large the total is).
                        "base_value": training_cost(res, d.total[1], key) if kind == "cost" else float("nan"),
                        "share": share,
                    }
                )
    return rows


def _difference(res: StudyResults, kind: str, key: str, a: str, b: str) -> dict:
    if kind == "score":
        task, metric = key.split("/")
        return paired(res, a, b, task, metric)
    nan = float("nan")
    delta = training_cost(res, a, key) - training_cost(res, b, key)
    return {"delta": delta, "ci_low": nan, "ci_high": nan, "p_holm": nan, "significant": False, "tested": False}


def decomposition_table(res: StudyResults) -> pd.DataFrame:
    """One row per decomposition, measure, path and part: the part's difference (with the
    comparison's interval and Holm-adjusted p where the study tested it), the total it is part
    of, and its share of that total. Each path's parts add up to the total."""
    rows = []
    for d in decompositions(res):
        measures = [("score", f"{t}/{m}", f"{tasks.get(t, res.cfg).title} {m}") for t, m in primary_metrics(res)]
        if all(res.trained(m) for m in d.methods):
            measures += [("cost", key, name) for key, name in COSTS.items()]
        rows += _rows(res, d, measures)
    return pd.DataFrame(rows)


def grid_table(res: StudyResults) -> pd.DataFrame:
    """One row per method crossed with the grid and each of its cells (the method itself at its
    own settings among them): the settings there, trainable parameters, peak training memory and
    each task's primary score with its interval."""
    rows = []
    settings = list(res.cfg.grid.settings)
    for parent in res.cfg.grid.methods:
        family = [m for m in res.methods if m == parent or methods.get(m, res.cfg).grid_of == parent]
        for m in family:
            own = methods.get(m, res.cfg).settings(res.cfg)
            row = {"grid_method": parent, "method": m}
            row.update({k: getattr(getattr(own, k.split(".")[0]), k.split(".")[1]) for k in settings})
            row["trainable_params"] = _train_figure(res, m, "trainable_params")
            row["peak_memory_mb"] = _train_figure(res, m, "peak_memory_mb")
            for task, metric in primary_metrics(res):
                value = res.metrics[
                    (res.metrics.method == m) & (res.metrics.task == task) & (res.metrics.metric == metric)
                ]
                if len(value):
                    row[f"{task}.value"] = float(value.value.iloc[0])
                    row[f"{task}.ci_low"] = float(value.ci_low.iloc[0])
                    row[f"{task}.ci_high"] = float(value.ci_high.iloc[0])
            rows.append(row)
    return pd.DataFrame(rows)


def _train_figure(res: StudyResults, method: str, column: str) -> float:
    r = res.resources
    row = r[(r.method == method) & (r.phase == "train")]
    return float(row[column].iloc[0]) if len(row) else float("nan")


def pareto_front(cost: list[float], score: list[float], higher_is_better: bool = True) -> list[bool]:
    """Which points no other point beats: none has a cost as low or lower and a score as good
    or better, with one of the two strictly better."""
    sign = 1.0 if higher_is_better else -1.0
    points = [(c, sign * s) for c, s in zip(cost, score)]
    return [
        not any((c2 <= c and s2 >= s) and (c2 < c or s2 > s) for j, (c2, s2) in enumerate(points) if j != i)
        for i, (c, s) in enumerate(points)
    ]


def pareto_table(res: StudyResults) -> pd.DataFrame:
    """Each trained method's primary score per task against its peak training memory, and
    whether it is on that task's Pareto front (point estimates; the intervals are beside them)."""
    train = res.resources[res.resources.phase == "train"] if len(res.resources) else res.resources
    if train.empty:
        return pd.DataFrame()
    frames = []
    for task, metric in primary_metrics(res):
        m = res.metrics[(res.metrics.task == task) & (res.metrics.metric == metric)]
        data = m[["method", "value", "ci_low", "ci_high"]].merge(train[["method", "peak_memory_mb"]], on="method")
        data.insert(0, "task", task)
        data.insert(1, "metric", metric)
        higher = tasks.get(task, res.cfg).metric(metric).higher_is_better
        data["on_front"] = pareto_front(list(data.peak_memory_mb), list(data.value), higher)
        frames.append(data)
    return pd.concat(frames, ignore_index=True)


def quantization_by(res: StudyResults, key: str) -> pd.DataFrame:
    """Each format's error and bits per weight pooled over the layers that share `key` (type or
    depth); `key` None pools every layer."""
    q = res.quantization
    if q.empty:
        return pd.DataFrame()
    groups = [("all", q)] if key is None else list(q.groupby(key, sort=True))
    rows = []
    for value, frame in groups:
        for fmt in FORMATS:
            layers = frame[frame.format == fmt.name].to_dict("records")
            if layers:
                rows.append({"group": value, "format": fmt.name, "title": fmt.title, **pooled(layers)})
    return pd.DataFrame(rows)


def quantized_methods(res: StudyResults) -> pd.DataFrame:
    """Each method of the study on a quantized base: its format, that format's pooled error and
    bits per weight (01_quantization), the error its training measured on the model it trained,
    and its primary difference per task against the first 16-bit method its declaration
    compares it with (what training, or running, on that base cost)."""
    formats = quantization_by(res, None)
    rows = []
    for name in res.methods:
        method = methods.get(name, res.cfg)
        if not method.quantize:
            continue
        fmt = format_of(method.settings(res.cfg).quant)
        row = {"method": name, "format": fmt, "trains": method.trains}
        hit = formats[formats.format == fmt] if len(formats) else formats
        row["relative_error"] = float(hit.relative_error.iloc[0]) if len(hit) else float("nan")
        row["bits_per_weight"] = float(hit.bits_per_weight.iloc[0]) if len(hit) else float("nan")
        row["trained_relative_error"] = _trained_error(res, name)
        partner = next((c.method for c in method.comparisons() if _sixteen_bit(res, c.method)), None)
        row["compared_with"] = partner
        for task, metric in primary_metrics(res):
            if partner is not None:
                d = paired(res, name, partner, task, metric)
                row.update(
                    {f"{task}.delta": d["delta"], f"{task}.ci_low": d["ci_low"], f"{task}.ci_high": d["ci_high"]}
                )
                row[f"{task}.significant"] = d["significant"]
        rows.append(row)
    return pd.DataFrame(rows)


def _sixteen_bit(res: StudyResults, name: str) -> bool:
    method = methods.get(name, res.cfg)
    return name in res.methods and not method.quantize and method.trains and not method.trains_every_weight


def _trained_error(res: StudyResults, method: str) -> float:
    runs = res.method_runs(method)
    if not runs or runs[0].name not in res.train:
        return float("nan")
    error = res.train[runs[0].name]["stages"]["quantized"].get("reconstruction") or {}
    return float(error.get("relative_error", math.nan))


def write(res: StudyResults) -> dict[str, Path]:
    """The method space's tables in results/ (a table that does not apply is left out)."""
    tables = {
        "decompositions.csv": decomposition_table(res),
        "grid.csv": grid_table(res),
        "pareto.csv": pareto_table(res),
        "quantization_formats.csv": quantized_methods(res),
        "quantization_layers.csv": res.quantization,
    }
    written = {}
    for name, frame in tables.items():
        if frame.empty:
            continue
        with atomic_path(res.paths.results / name) as tmp:
            frame.replace({np.nan: None}).to_csv(tmp, index=False)
        written[name] = res.paths.results / name
    return written
