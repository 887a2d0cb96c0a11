"""From recorded runs to the study's result tables (their columns are documented in
docs/design.md): metrics.csv, comparisons.csv and resources.csv. Reads what the train and evaluate steps
wrote; never trains or evaluates.

A metric's value is its mean over items (per-item scores averaged over seeds), with an
exact interval for 0/1 metrics of one run and a bootstrap interval over items otherwise;
the spread across seeds is reported beside it. A comparison uses the test its metric
declares; with several seeds it uses a test whose variance adds seed-to-seed variance to
item sampling (lorastudy.stats.seed_item_t). Every comparison also records the level its
own p-value must reach under Holm's correction, and the detectable difference at that level.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import methods, stats, tasks
from .config import Run, StudyConfig
from .files import StudyPaths, atomic_path, read_json, read_jsonl
from .resources import MB

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


def comparisons_made(study_methods: list[str]) -> list[tuple[str, str, methods.Comparison]]:
    """The comparisons a study makes, with why: each method against those its declaration
    compares it with (each fine-tuning against the base, QLoRA against LoRA, each ablation
    against what it ablates), when both are in it. No other pair is compared."""
    return [(a, c.method, c) for a in study_methods for c in methods.get(a).comparisons() if c.method in study_methods]


def pairs(study_methods: list[str]) -> list[tuple[str, str]]:
    """The pairs of methods a study compares (method A, method B), in the declarations' order."""
    return [(a, b) for a, b, _ in comparisons_made(study_methods)]


def headline_pairs(study_methods: list[str]) -> list[tuple[str, str]]:
    """The comparisons the executive summary states in words, with costs and a recommendation."""
    return [(a, b) for a, b, c in comparisons_made(study_methods) if c.headline]


@dataclass
class StudyResults:
    cfg: StudyConfig
    paths: StudyPaths
    runs: list[Run]
    train: dict[str, dict]
    evals: dict[str, dict]
    items: dict[tuple[str, str], list[dict]]  # (run, task) -> predictions, in item order
    data_summary: dict
    # Each linear layer's error and stored bytes per format, from the 01_quantization step (empty
    # where the study quantizes nothing), and its per-format summary.
    quantization: pd.DataFrame = field(default_factory=pd.DataFrame)
    quantization_summary: dict = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=pd.DataFrame)
    metrics_by_seed: pd.DataFrame = field(default_factory=pd.DataFrame)
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    resources: pd.DataFrame = field(default_factory=pd.DataFrame)
    losses: pd.DataFrame = field(default_factory=pd.DataFrame)
    latency: pd.DataFrame = field(default_factory=pd.DataFrame)
    generation: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def methods(self) -> list[str]:
        return list(self.cfg.methods)

    def method_runs(self, method: str) -> list[Run]:
        return [r for r in self.runs if r.method == method]

    def trained(self, method: str) -> bool:
        return methods.get(method).trains

    def item_scores(self, method: str, task: str, metric: str) -> np.ndarray:
        """Per-item scores of a method, averaged over its seeds' runs."""
        return np.mean(self.run_scores(method, task, metric), axis=0)

    def run_scores(self, method: str, task: str, metric: str) -> np.ndarray:
        """Per-item scores of a method, one row per seed's run: (runs, items)."""
        key = tasks.get(task).metric(metric).key
        per_run = [[it["scores"][key] for it in self.items[(r.name, task)]] for r in self.method_runs(method)]
        return np.array(per_run, dtype=float).reshape(len(per_run), -1)


def load(cfg: StudyConfig, paths: StudyPaths) -> StudyResults:
    runs = cfg.runs()
    missing = [p for r in runs for p in [paths.eval_json(r.name)] if not p.is_file()]
    trained = [r for r in runs if methods.get(r.method).trains]
    missing += [paths.train_json(r.name) for r in trained if not paths.train_json(r.name).is_file()]
    if missing:
        raise FileNotFoundError("results missing (run the study first): " + ", ".join(map(str, missing)))
    train = {r.name: read_json(paths.train_json(r.name)) for r in trained}
    evals = {r.name: read_json(paths.eval_json(r.name)) for r in runs}
    items = {}
    for r in runs:
        for t in cfg.tasks:
            items[(r.name, t.name)] = read_jsonl(paths.predictions(r.name, t.name))
    _check_aligned(items, runs, cfg)
    res = StudyResults(cfg, paths, runs, train, evals, items, read_json(paths.data / "summary.json"))
    if (paths.quantization / "summary.json").is_file():
        res.quantization = pd.read_csv(paths.quantization / "layers.csv")
        res.quantization_summary = read_json(paths.quantization / "summary.json")
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
    rows, seed_rows = [], []
    for method, t in itertools.product(res.methods, res.cfg.tasks):
        task = tasks.get(t.name)
        runs = res.method_runs(method)
        for metric in task.metrics:
            if metric.aggregation == "median":
                row, per_seed = _median_row(res, method, t.name, metric)
            else:
                row, per_seed = _mean_row(res, method, t.name, metric)
            if row is None:
                continue  # undefined: no output had a value; the report says so
            summary = stats.seed_summary([v for v in per_seed if v is not None])
            rows.append(
                {
                    "method": method,
                    "task": t.name,
                    "metric": metric.name,
                    **row,
                    "higher_is_better": metric.higher_is_better,
                    "primary": metric.primary,
                    "is_fraction": metric.is_fraction,
                    "n_seeds": len(runs),
                    "seed_sd": summary["sd"],
                }
            )
            for r, v in zip(runs, per_seed):
                if v is not None:
                    seed_rows.append(
                        {"method": method, "seed": r.seed, "task": t.name, "metric": metric.name, "value": v}
                    )
    return pd.DataFrame(rows), pd.DataFrame(seed_rows)


def _mean_row(res: StudyResults, method: str, task: str, metric) -> tuple[dict, list[float]]:
    """Mean over items with its interval: exact for a 0/1 metric of one run, a bound on the
    share of items that could differ when every item scored the same (never [x, x]), else a
    percentile bootstrap over items of the seed-averaged scores."""
    rep = res.cfg.report
    runs = res.run_scores(method, task, metric.name)
    scores = runs.mean(axis=0)
    identical = bool(np.all(scores == scores[0]))
    if metric.is_binary and len(runs) == 1:
        value, low, high = stats.proportion_ci(scores, confidence=rep.confidence)
        interval = "exact"
    elif identical and metric.is_fraction:
        value = float(scores[0])
        low, high = stats.identical_scores_ci(value, len(scores), confidence=rep.confidence)
        interval = "bound"
    else:
        value, low, high = stats.bootstrap_ci(
            scores, n_resamples=rep.bootstrap_resamples, confidence=rep.confidence, seed=0
        )
        interval = "bootstrap"
    row = {"value": value, "ci_low": low, "ci_high": high, "n": len(scores), "interval": interval}
    row.update(identical=identical, n_items=len(scores), n_items_with_value=len(scores), n_outputs=runs.size)
    return row, [float(v) for v in runs.mean(axis=1)]


def _median_row(res: StudyResults, method: str, task: str, metric) -> tuple[dict | None, list[float | None]]:
    """Median over every output (item x seed) that has a value, with an interval from
    resampling items; n is the number of outputs the median is taken over."""
    rep = res.cfg.report
    runs = res.method_runs(method)
    key = metric.key
    values = np.array(
        [
            [np.nan if it["scores"].get(key) is None else it["scores"][key] for it in res.items[(r.name, task)]]
            for r in runs
        ],
        dtype=float,
    ).T  # (items, runs)
    present = ~np.isnan(values)
    if not present.any():
        return None, []
    value, low, high = stats.cluster_bootstrap_ci(
        values, n_resamples=rep.bootstrap_resamples, confidence=rep.confidence, seed=0
    )
    row = {"value": value, "ci_low": low, "ci_high": high, "n": int(present.sum()), "interval": "bootstrap"}
    row.update(
        identical=bool(np.ptp(values[present]) == 0),
        n_items=values.shape[0],
        n_items_with_value=int(present.any(axis=1).sum()),
        n_outputs=values.size,
    )
    # One value per run, None for a run in which no output had one.
    per_seed = [float(np.median(col[~np.isnan(col)])) if (~np.isnan(col)).any() else None for col in values.T]
    return row, per_seed


# ------------------------------------------------------------------------- comparisons.csv


def comparison_table(res: StudyResults) -> pd.DataFrame:
    rep = res.cfg.report
    rows = []
    for (a, b, why), t in itertools.product(comparisons_made(res.methods), res.cfg.tasks):
        for metric in tasks.get(t.name).metrics:
            if not metric.compared:
                continue
            x, y = res.run_scores(a, t.name, metric.name), res.run_scores(b, t.name, metric.name)
            result = stats.compare_paired(
                x,
                y,
                test=metric.test,
                n_resamples=rep.bootstrap_resamples,
                confidence=rep.confidence,
                seed=0,
                scale=(0.0, 1.0) if metric.is_fraction else None,
            )
            seed_deltas = result.pop("seed_deltas")
            rows.append(
                {
                    "task": t.name,
                    "metric": metric.name,
                    "method_a": a,
                    "method_b": b,
                    **result,
                    "n": x.shape[1],
                    "higher_is_better": metric.higher_is_better,
                    "primary": metric.primary,
                    "n_seeds": max(len(x), len(y)),
                    "trained": sum(res.trained(m) for m in (a, b)),
                    "seed_delta_min": min(seed_deltas),
                    "seed_delta_max": max(seed_deltas),
                    "reason": why.reason,
                    "headline": why.headline,
                }
            )
    table = pd.DataFrame(rows)
    if not table.empty:
        # Holm over every comparison in the study: the family a reader scans for "significant".
        p = table["p_value"].to_numpy()
        table["p_holm"] = stats.holm(p)
        table["significant"] = table["p_holm"] < rep.alpha
        # The level each comparison's own p must reach under Holm, and the difference it detects there.
        table["alpha_effective"] = stats.holm_effective_levels(p, rep.alpha)
        table["mdd"] = [
            stats.detectable_difference(se, df, alpha=level)
            for se, df, level in zip(table["se"], table["df"], table["alpha_effective"])
        ]
    return table


# ------------------------------------------------------------------------- resources.csv


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def resource_table(res: StudyResults) -> pd.DataFrame:
    rows = []
    for method in res.methods:
        runs = res.method_runs(method)
        if res.trained(method):
            rows.append(_train_row(method, [res.train[r.name] for r in runs]))
        rows.append(_eval_row(method, [res.evals[r.name] for r in runs]))
    return pd.DataFrame(rows)


def _train_row(method: str, recs: list[dict]) -> dict:
    """A method's training figures: the worst peak over its seeds (what a machine must hold),
    mean times, and the first run's sizes (the same for every seed)."""
    first = recs[0]
    return {
        "method": method,
        "phase": "train",
        "trainable_params": first["trainable_params"],
        "total_params": first["total_params"],
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
        "cuda_allocated_after_prepare_mb": _cuda(first["stages"].get("prepare", {}).get("cuda_allocated_bytes")),
        "peak_allocated_mb": _cuda(max(r["train_peak"].get("peak_allocated_bytes", 0) for r in recs)),
        "peak_reserved_mb": _cuda(max(r["train_peak"].get("peak_reserved_bytes", 0) for r in recs)),
        "bits_per_quantized_weight": first["stages"]["quantized"].get("bits_per_quantized_weight"),
        "quant_relative_error": first["stages"]["quantized"].get("reconstruction", {}).get("relative_error"),
        "optimizer_steps": first["optimizer_steps"],
        "tokens_seen": first["tokens_seen"],
        # A run over several processes (train.processes): the peak above is its largest process's.
        "processes": first.get("processes", 1),
        "peak_memory_mb_total": _total_mb(recs),
        "items_per_s": None,
        "precision": first["precision"],
        "compute_precision": first["compute_precision"],
        "optim": first["optim"],
        "fp32_params": first["stages"].get("prepare", {}).get("fp32_params"),
    }


def _eval_row(method: str, recs: list[dict]) -> dict:
    first = recs[0]
    latencies = [r["latency"] for r in recs if "latency" in r]
    items = sum(t["n"] for t in first["tasks"].values())
    return {
        "method": method,
        "phase": "eval",
        # The parameters fine-tuning changed in the evaluated model (every one after full fine-tuning).
        "trainable_params": first.get("fine_tuned_params", first["adapter_params"]),
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
        # Each task's own peak (evaluation memory is the task's activations and logits, not only the weights).
        **{
            f"peak_memory_mb.{task}": max(r["tasks"][task].get("peak_memory_mb", 0) for r in recs) or None
            for task in first["tasks"]
        },
    }


def _total_mb(recs: list[dict]) -> float | None:
    """Every process's peak added up, for a run over several processes; None for one process,
    whose total is its peak."""
    if all(r.get("processes", 1) == 1 for r in recs):
        return None
    return max(r["peak_memory_mb_total"] for r in recs)


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
        if methods.get(run.method).trains and path.is_file():
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
        if tasks.get(t.name).kind != "generate":
            continue
        items = [it for r in res.method_runs(method) for it in res.items[(r.name, t.name)]]
        if not items or any("hit_token_limit" not in it for it in items):
            continue
        hits = sum(bool(it["hit_token_limit"]) for it in items)
        rows.append(
            {
                "method": method,
                "task": t.name,
                "max_new_tokens": t.max_new_tokens or tasks.get(t.name).max_new_tokens,
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
