"""From recorded runs to the study's result tables (DESIGN.md's contracts):
metrics.csv, comparisons.csv and resources.csv. Reads what the train and evaluate steps
wrote; never trains or evaluates.

With several seeds, a method's per-item score is its mean over seeds, so intervals and
paired tests are over items; the spread across seeds is reported beside them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import stats
from .config import METHODS, Run, StudyConfig
from .io import StudyPaths, atomic_path, read_json, read_jsonl
from .resources import MB
from .tasks import TASKS

METRIC_COLUMNS = ["method", "task", "metric", "value", "ci_low", "ci_high", "n", "higher_is_better"]
COMPARISON_COLUMNS = ["task", "metric", "method_a", "method_b", "delta", "ci_low", "ci_high", "p_value", "test"]
RESOURCE_COLUMNS = [
    "method",
    "phase",
    "trainable_params",
    "total_params",
    "peak_memory_mb",
    "memory_kind",
    "wall_s",
    "tokens_per_s",
    "latency_ms_p50",
    "latency_ms_p95",
]
# The pairs the study compares, in this order: each fine-tuning against the base, then the two.
PAIRS = [("lora", "base"), ("qlora", "base"), ("qlora", "lora")]


@dataclass
class StudyResults:
    cfg: StudyConfig
    paths: StudyPaths
    runs: list[Run]
    train: dict[str, dict]
    evals: dict[str, dict]
    items: dict[tuple[str, str], list[dict]]  # (run, task) -> predictions, in item order
    data_summary: dict
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics_by_seed: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)
    losses: pd.DataFrame = field(default_factory=pd.DataFrame)
    latency: pd.DataFrame = field(default_factory=pd.DataFrame)
    generation: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def methods(self) -> list[str]:
        return [m for m in METHODS if m in self.cfg.methods]

    def method_runs(self, method: str) -> list[Run]:
        return [r for r in self.runs if r.method == method]

    def item_scores(self, method: str, task: str, metric: str) -> np.ndarray:
        """Per-item scores of a method, averaged over its seeds' runs."""
        per_run = [[it["scores"][metric] for it in self.items[(r.name, task)]] for r in self.method_runs(method)]
        return np.mean(np.array(per_run, dtype=float), axis=0)


def load(cfg: StudyConfig, paths: StudyPaths) -> StudyResults:
    runs = cfg.runs()
    missing = [p for r in runs for p in [paths.eval_json(r.name)] if not p.is_file()]
    missing += [paths.train_json(r.name) for r in runs if r.method != "base" and not paths.train_json(r.name).is_file()]
    if missing:
        raise FileNotFoundError("results missing (run the study first): " + ", ".join(map(str, missing)))
    train = {r.name: read_json(paths.train_json(r.name)) for r in runs if r.method != "base"}
    evals = {r.name: read_json(paths.eval_json(r.name)) for r in runs}
    items = {}
    for r in runs:
        for t in cfg.tasks:
            items[(r.name, t.name)] = read_jsonl(paths.predictions(r.name, t.name))
    _check_aligned(items, runs, cfg)
    res = StudyResults(cfg, paths, runs, train, evals, items, read_json(paths.data / "summary.json"))
    res.metrics, res.metrics_by_seed = metric_table(res)
    res.comparisons = comparison_table(res)
    res.resources = resource_table(res)
    res.losses = loss_table(res)
    res.latency = latency_table(res)
    res.generation = generation_table(res)
    return res


def _check_aligned(items: dict, runs: list[Run], cfg: StudyConfig) -> None:
    """Paired statistics need every run scored on the same items in the same order."""
    for t in cfg.tasks:
        ids = [[it["id"] for it in items[(r.name, t.name)]] for r in runs]
        if any(i != ids[0] for i in ids[1:]):
            raise ValueError(f"runs were evaluated on different {t.name} items; rerun with --force")


# ------------------------------------------------------------------------- metrics.csv


def metric_table(res: StudyResults) -> tuple[pd.DataFrame, pd.DataFrame]:
    rep = res.cfg.report
    rows, seed_rows = [], []
    for method, t in itertools.product(res.methods, res.cfg.tasks):
        task = TASKS[t.name]
        for metric in task.metrics:
            runs = res.method_runs(method)
            if metric.per_item:
                scores = res.item_scores(method, t.name, metric.name)
                value, low, high = stats.bootstrap_ci(
                    scores, n_resamples=rep.bootstrap_resamples, confidence=rep.confidence, seed=0
                )
                n = len(scores)
                per_seed = [
                    float(np.mean([it["scores"][metric.name] for it in res.items[(r.name, t.name)]])) for r in runs
                ]
            else:  # median absolute error, over the outputs that have a number
                errors = np.array(
                    [
                        it["abs_error"]
                        for r in runs
                        for it in res.items[(r.name, t.name)]
                        if it.get("abs_error") is not None
                    ],
                    dtype=float,
                )
                if errors.size == 0:
                    continue  # undefined: no output had a number; the report says so
                value, low, high = stats.bootstrap_ci(
                    errors, n_resamples=rep.bootstrap_resamples, confidence=rep.confidence, seed=0, statistic=np.median
                )
                n = errors.size
                per_seed = [
                    res.evals[r.name]["tasks"][t.name]["metrics"][metric.name]
                    for r in runs
                    if metric.name in res.evals[r.name]["tasks"][t.name]["metrics"]
                ]
            summary = stats.seed_summary(per_seed) if per_seed else {"sd": None, "n_seeds": 0}
            rows.append(
                {
                    "method": method,
                    "task": t.name,
                    "metric": metric.name,
                    "value": value,
                    "ci_low": low,
                    "ci_high": high,
                    "n": n,
                    "higher_is_better": metric.higher_is_better,
                    "primary": metric.name == task.primary,
                    "is_fraction": metric.is_fraction,
                    "n_seeds": summary["n_seeds"],
                    "seed_sd": summary["sd"],
                }
            )
            for r, v in zip(runs, per_seed):
                seed_rows.append({"method": method, "seed": r.seed, "task": t.name, "metric": metric.name, "value": v})
    return pd.DataFrame(rows), pd.DataFrame(seed_rows)


# ------------------------------------------------------------------------- comparisons.csv


def comparison_table(res: StudyResults) -> pd.DataFrame:
    rep = res.cfg.report
    rows = []
    for (a, b), t in itertools.product(PAIRS, res.cfg.tasks):
        if a not in res.methods or b not in res.methods:
            continue
        for metric in TASKS[t.name].metrics:
            if not metric.per_item:
                continue
            x, y = res.item_scores(a, t.name, metric.name), res.item_scores(b, t.name, metric.name)
            result = stats.compare_paired(x, y, n_resamples=rep.bootstrap_resamples, confidence=rep.confidence, seed=0)
            rows.append(
                {
                    "task": t.name,
                    "metric": metric.name,
                    "method_a": a,
                    "method_b": b,
                    **result,
                    "n": len(x),
                    "higher_is_better": metric.higher_is_better,
                    "primary": metric.name == TASKS[t.name].primary,
                    "mdd": stats.min_detectable_difference(x - y, alpha=rep.alpha),
                }
            )
    table = pd.DataFrame(rows)
    if not table.empty:
        # Holm over every comparison in the study: the family a reader scans for "significant".
        table["p_holm"] = stats.holm(table["p_value"].to_numpy())
        table["significant"] = table["p_holm"] < rep.alpha
    return table


# ------------------------------------------------------------------------- resources.csv


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def resource_table(res: StudyResults) -> pd.DataFrame:
    rows = []
    for method in res.methods:
        runs = res.method_runs(method)
        if method != "base":
            recs = [res.train[r.name] for r in runs]
            first = recs[0]
            rows.append(
                {
                    "method": method,
                    "phase": "train",
                    "trainable_params": first["trainable_params"],
                    "total_params": first["total_params"],
                    # The worst case over seeds: what a machine must hold.
                    "peak_memory_mb": max(r["peak_memory_mb"] for r in recs),
                    "memory_kind": first["memory_kind"],
                    "wall_s": _mean(r["wall_s"] for r in recs),
                    "tokens_per_s": _mean(r["tokens_per_s"] for r in recs),
                    "latency_ms_p50": None,
                    "latency_ms_p95": None,
                    "n_seeds": len(recs),
                    "pct_trainable": first["pct_trainable"],
                    "adapter_mb": first["adapter_bytes"] / MB,
                    "weights_mb": first["stages"]["load"]["weights_bytes"] / MB,
                    "weights_after_prepare_mb": _stage_mb(first, "prepare", "weights_bytes"),
                    "weights_with_adapters_mb": first["stages"]["adapters"]["weights_bytes"] / MB,
                    "rss_after_load_mb": first["stages"]["load"]["rss_bytes"] / MB,
                    "rss_after_prepare_mb": _stage_mb(first, "prepare", "rss_bytes"),
                    "cuda_allocated_after_load_mb": _cuda(first["stages"]["load"].get("cuda_allocated_bytes")),
                    "peak_allocated_mb": _cuda(max(r["train_peak"].get("peak_allocated_bytes", 0) for r in recs)),
                    "peak_reserved_mb": _cuda(max(r["train_peak"].get("peak_reserved_bytes", 0) for r in recs)),
                    "bits_per_quantized_weight": first["stages"]["quantized"].get("bits_per_quantized_weight"),
                    "quant_relative_error": first["stages"]["quantized"]
                    .get("reconstruction", {})
                    .get("relative_error"),
                    "optimizer_steps": first["optimizer_steps"],
                    "tokens_seen": first["tokens_seen"],
                    "items_per_s": None,
                    "precision": first["precision"],
                    "optim": first["optim"],
                }
            )
        recs = [res.evals[r.name] for r in runs]
        first = recs[0]
        latencies = [r["latency"] for r in recs if "latency" in r]
        items = sum(t["n"] for t in first["tasks"].values())
        rows.append(
            {
                "method": method,
                "phase": "eval",
                "trainable_params": first["adapter_params"],
                "total_params": first["total_params"],
                "peak_memory_mb": max(r["peak_memory_mb"] for r in recs),
                "memory_kind": first["memory_kind"],
                "wall_s": _mean(r["wall_s"] for r in recs),
                "tokens_per_s": _mean(lat["generated_tokens_per_s"] for lat in latencies),
                "latency_ms_p50": _mean(lat["p50_ms"] for lat in latencies),
                "latency_ms_p95": _mean(lat["p95_ms"] for lat in latencies),
                "n_seeds": len(recs),
                "weights_mb": first["weights_bytes"] / MB,
                "peak_allocated_mb": _cuda(max(r["peak"].get("peak_allocated_bytes", 0) for r in recs)),
                "peak_reserved_mb": _cuda(max(r["peak"].get("peak_reserved_bytes", 0) for r in recs)),
                "items_per_s": _mean(items / sum(t["wall_s"] for t in r["tasks"].values()) for r in recs),
            }
        )
    return pd.DataFrame(rows)


def _stage_mb(record: dict, stage: str, key: str) -> float | None:
    """A training stage's figure in MB; None where the stage did not happen (no k-bit prep)."""
    value = record["stages"].get(stage, {}).get(key)
    return value / MB if value is not None else None


def _cuda(value: int | None) -> float | None:
    return value / MB if value else None


# ------------------------------------------------------------------------- curves and latencies


def loss_table(res: StudyResults) -> pd.DataFrame:
    frames = []
    for run in res.runs:
        path = res.paths.loss_csv(run.name)
        if run.method != "base" and path.is_file():
            frame = pd.read_csv(path)
            frame["method"], frame["seed"] = run.method, run.seed
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latency_table(res: StudyResults) -> pd.DataFrame:
    rows = [
        {"method": run.method, "seed": run.seed, "latency_ms": ms}
        for run in res.runs
        for ms in res.evals[run.name].get("latency", {}).get("ms", [])
    ]
    return pd.DataFrame(rows)


def generation_table(res: StudyResults) -> pd.DataFrame:
    """How long each method's generations ran, per generative task: how many outputs hit the
    token limit (no end token and no stop string within it), so a score of truncated
    answers is read as such. Runs recorded before the limit was tracked give no row."""
    rows = []
    for method, t in itertools.product(res.methods, res.cfg.tasks):
        if TASKS[t.name].kind != "generate":
            continue
        items = [it for r in res.method_runs(method) for it in res.items[(r.name, t.name)]]
        if not items or any("hit_token_limit" not in it for it in items):
            continue
        hits = sum(bool(it["hit_token_limit"]) for it in items)
        rows.append(
            {
                "method": method,
                "task": t.name,
                "max_new_tokens": t.max_new_tokens or TASKS[t.name].default_max_new_tokens,
                "outputs": len(items),
                "hit_token_limit": hits,
                "hit_token_limit_share": hits / len(items),
                "median_generated_tokens": float(np.median([it["generated_tokens"] for it in items])),
            }
        )
    return pd.DataFrame(rows)


def write(res: StudyResults) -> dict[str, Path]:
    """Write the result tables (contract columns first, then the extra ones)."""
    out = res.paths.results
    tables = {
        "metrics.csv": (res.metrics, METRIC_COLUMNS),
        "comparisons.csv": (res.comparisons, COMPARISON_COLUMNS),
        "resources.csv": (res.resources, RESOURCE_COLUMNS),
        "metrics_by_seed.csv": (res.metrics_by_seed, []),
        "losses.csv": (res.losses, []),
        "latency.csv": (res.latency, []),
        "generation.csv": (res.generation, []),
    }
    written = {}
    for name, (frame, contract) in tables.items():
        if frame.empty:
            frame = pd.DataFrame(columns=contract)  # e.g. no pairs to compare in a one-method study
        elif contract:
            frame = frame[contract + [c for c in frame.columns if c not in contract]]
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
        written[name] = out / name
    return written
