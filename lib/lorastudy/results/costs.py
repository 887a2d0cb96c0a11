"""resources.csv: each method's costs by phase (parameters, memory, time, throughput, latency:
per item, and TTFT and TPOT at a fixed generation length) from the training and evaluation
records."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..resources.memory import MB
from .recorded import StudyResults

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
    "ttft_ms_p50",
    "ttft_ms_p95",
    "tpot_ms_p50",
    "tpot_ms_p95",
    "latency_tokens",
]

# The fixed-length figures (evaluate/latency.py): resources.csv's column, the record's key.
FIXED_LENGTH = {
    "ttft_ms_p50": "ttft_p50_ms",
    "ttft_ms_p95": "ttft_p95_ms",
    "tpot_ms_p50": "tpot_p50_ms",
    "tpot_ms_p95": "tpot_p95_ms",
}


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
        **dict.fromkeys(FIXED_LENGTH),
        "latency_tokens": None,
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
        **_fixed_length(latencies),
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


def _fixed_length(latencies: list[dict]) -> dict:
    """TTFT and TPOT at the fixed generation length, each the mean over seeds of a run's p50 or
    p95; None (not measured) for runs recorded before fixed-length timing or without latency."""
    fixed = [lat["fixed_length"] for lat in latencies if "fixed_length" in lat]
    lengths = {f["tokens"] for f in fixed}
    if len(lengths) > 1:  # the seeds' records come from one study, so one length; never averaged across
        raise ValueError(f"runs of one method timed at different fixed lengths: {sorted(lengths)}")
    return {
        **{column: _mean(f[key] for f in fixed) for column, key in FIXED_LENGTH.items()},
        "latency_tokens": lengths.pop() if lengths else None,
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
