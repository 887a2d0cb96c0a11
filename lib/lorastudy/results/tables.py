"""From recorded runs to the study's result tables (their columns are documented in
docs/design.md): metrics.csv and comparisons.csv here, resources.csv in costs.py. Reads what the
train and evaluate steps wrote; never trains or evaluates.

A metric's value is its mean over items (per-item scores averaged over seeds), with an
exact interval for 0/1 metrics of one run and a bootstrap interval over items otherwise;
the spread across seeds is reported beside it. A comparison uses the test its metric
declares; with several seeds it uses a test whose variance adds each trained method's
seed-to-seed variance to item sampling (results.seeds). Every comparison also records the
level its own p-value must reach under Holm's correction, the detectable difference and the
interval at that level, and its verdict (results.decisions).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from .. import methods, tasks
from ..study.paths import StudyPaths
from ..study.runs import runs_of
from ..study.schema import StudyConfig
from ..util.files import atomic_path, read_json, read_jsonl
from . import decisions, intervals, stats
from .convergence import CONVERGENCE_COLUMNS, convergence_table
from .costs import RESOURCE_COLUMNS, resource_table
from .recorded import StudyResults, _check_aligned

METRIC_COLUMNS = ["method", "task", "metric", "value", "ci_low", "ci_high", "n", "higher_is_better"]


COMPARISON_COLUMNS = ["task", "metric", "method_a", "method_b", "delta", "ci_low", "ci_high", "p_value", "test"]


# Written right after the contract's columns: the verdict and the interval printed beside it.
VERDICT_COLUMNS = ["verdict", "verdict_ci_low", "verdict_ci_high", "p_holm", "alpha_effective", "margin", "provisional"]


def comparisons_made(cfg: StudyConfig) -> list[tuple[str, str, methods.Comparison]]:
    """The comparisons a study makes, with why: each method against those its declaration
    compares it with (each fine-tuning against the base, QLoRA against LoRA, each ablation
    against what it ablates), when both are in it. No other pair is compared."""
    listed = cfg.methods
    return [(a, c.method, c) for a in listed for c in methods.get(a, cfg).comparisons() if c.method in listed]


def pairs(cfg: StudyConfig) -> list[tuple[str, str]]:
    """The pairs of methods a study compares (method A, method B), in the declarations' order."""
    return [(a, b) for a, b, _ in comparisons_made(cfg)]


def headline_pairs(cfg: StudyConfig) -> list[tuple[str, str]]:
    """The comparisons the executive summary states in words, with costs and a recommendation."""
    return [(a, b) for a, b, c in comparisons_made(cfg) if c.headline]


def trained_headline_pairs(res: StudyResults) -> list[tuple[str, str]]:
    """The executive summary's pairs of which both methods trained: those with costs to compare."""
    return [(a, b) for a, b in headline_pairs(res.cfg) if res.trained(a) and res.trained(b)]


def load(cfg: StudyConfig, paths: StudyPaths) -> StudyResults:
    runs = runs_of(cfg)
    missing = [p for r in runs for p in [paths.eval_json(r.name)] if not p.is_file()]
    trained = [r for r in runs if methods.get(r.method, cfg).trains]
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
    res.convergence = convergence_table(res)
    res.latency = latency_table(res)
    res.generation = generation_table(res)
    return res


def metric_table(res: StudyResults) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, seed_rows = [], []
    for method, t in itertools.product(res.methods, res.cfg.tasks):
        task = tasks.get(t.name, res.cfg)
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
    # Every output, not every seed-averaged score: 1 then 0 on every item averages to 0.5 on
    # every item, yet no item "scored 0.5".
    identical = bool(np.all(runs == runs.flat[0]))
    if metric.is_binary and len(runs) == 1:
        value, low, high = intervals.proportion_ci(scores, confidence=rep.confidence)
        interval = "exact"
    elif bool(np.all(scores == scores[0])) and metric.is_fraction:  # no spread over items to resample
        value = float(scores[0])
        low, high = intervals.identical_scores_ci(value, len(scores), confidence=rep.confidence)
        interval = "bound"
    else:
        value, low, high = intervals.bootstrap_ci(
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
    value, low, high = intervals.cluster_bootstrap_ci(
        values, n_resamples=rep.bootstrap_resamples, confidence=rep.confidence, seed=0
    )
    row = {"value": value, "ci_low": low, "ci_high": high, "n": int(present.sum()), "interval": "bootstrap"}
    row.update(
        identical=bool(np.ptp(values[present]) == 0),
        n_at_value=int(np.sum(values[present] == value)),
        n_items=values.shape[0],
        n_items_with_value=int(present.any(axis=1).sum()),
        n_outputs=values.size,
    )
    # One value per run, None for a run in which no output had one.
    per_seed = [float(np.median(col[~np.isnan(col)])) if (~np.isnan(col)).any() else None for col in values.T]
    return row, per_seed


def comparison_table(res: StudyResults) -> pd.DataFrame:
    rep = res.cfg.report
    rows = []
    for (a, b, why), t in itertools.product(comparisons_made(res.cfg), res.cfg.tasks):
        for metric in tasks.get(t.name, res.cfg).metrics:
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
        # The difference it detects there, the interval there, the margin and the verdict.
        table = decisions.decide(res, table)
    return table


def loss_table(res: StudyResults) -> pd.DataFrame:
    frames = []
    for run in res.runs:
        path = res.paths.loss_csv(run.name)
        if methods.get(run.method, res.cfg).trains and path.is_file():
            frame = pd.read_csv(path)
            frame["method"], frame["seed"] = run.method, run.seed
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def latency_table(res: StudyResults) -> pd.DataFrame:
    """One row per timed item and run: its whole answer's latency and, at the fixed generation
    length, its TTFT and TPOT (the same items in the same order; NaN in a run recorded before
    fixed-length timing)."""
    rows = []
    for run in res.runs:
        lat = res.evals[run.name].get("latency", {})
        fixed = lat.get("fixed_length", {})
        for i, ms in enumerate(lat.get("ms", [])):
            rows.append(
                {
                    "method": run.method,
                    "seed": run.seed,
                    "latency_ms": ms,
                    "ttft_ms": fixed["ttft_ms"][i] if fixed else np.nan,
                    "tpot_ms": fixed["tpot_ms"][i] if fixed else np.nan,
                    "tokens": fixed.get("tokens", np.nan),
                }
            )
    return pd.DataFrame(rows)


def generation_table(res: StudyResults) -> pd.DataFrame:
    """How long each method's generations ran, per generative task: how many outputs hit the
    token limit (no end token and no stop string within it), so a score of truncated
    answers is read as such. Runs recorded before the limit was tracked give no row."""
    rows = []
    for method, t in itertools.product(res.methods, res.cfg.tasks):
        if tasks.get(t.name, res.cfg).kind != "generate":
            continue
        items = [it for r in res.method_runs(method) for it in res.items[(r.name, t.name)]]
        if not items or any("hit_token_limit" not in it for it in items):
            continue
        hits = sum(bool(it["hit_token_limit"]) for it in items)
        rows.append(
            {
                "method": method,
                "task": t.name,
                "max_new_tokens": t.max_new_tokens or tasks.get(t.name, res.cfg).max_new_tokens,
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
        "comparisons.csv": (res.comparisons, COMPARISON_COLUMNS + VERDICT_COLUMNS),
        "resources.csv": (res.resources, RESOURCE_COLUMNS),
        "metrics_by_seed.csv": (res.metrics_by_seed, []),
        "losses.csv": (res.losses, []),
        "convergence.csv": (res.convergence, CONVERGENCE_COLUMNS),
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
