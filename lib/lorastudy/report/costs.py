"""The report's costs section: each method's parameters, memory, time and latency, one table
per phase, and what the memory figure holds on this machine."""

from __future__ import annotations

import numpy as np

from lorastudy import methods, tasks
from lorastudy.report.charts import label
from lorastudy.report.markdown import escape, table
from lorastudy.report.recommendation import cost_sentences, memory_kind_label
from lorastudy.results.tables import StudyResults, trained_headline_pairs

# Evaluation figures that a run may lack (no generation task, or recorded before they were
# measured): their rows stay in the evaluation table and say so, never blank or 0.
LATENCY_KEYS = ("latency_ms_p50", "latency_ms_p95", "ttft_ms_p50", "ttft_ms_p95", "tpot_ms_p50", "tpot_ms_p95")
NOT_MEASURED = "not measured"


def _latency_rows(tokens: int) -> list[tuple[str, str, object]]:
    """Latency at batch size 1: per whole answer, then TTFT and TPOT at the fixed length."""

    def ms(v):
        return f"{v:,.1f}"

    def fine_ms(v):
        return f"{v:,.2f}"

    return [
        ("latency per whole answer p50 at batch 1 (ms; answers of their own length)", "latency_ms_p50", ms),
        ("latency per whole answer p95 at batch 1 (ms; answers of their own length)", "latency_ms_p95", ms),
        (f"time to first token (TTFT) p50 at batch 1 (ms; generating {tokens} tokens)", "ttft_ms_p50", ms),
        (f"time to first token (TTFT) p95 at batch 1 (ms; generating {tokens} tokens)", "ttft_ms_p95", ms),
        (f"time per output token (TPOT) p50 at batch 1 (ms; tokens 2 to {tokens})", "tpot_ms_p50", fine_ms),
        (f"time per output token (TPOT) p95 at batch 1 (ms; tokens 2 to {tokens})", "tpot_ms_p95", fine_ms),
    ]


def _resource_rows(kind: str, tokens: int) -> list[tuple[str, str, object]]:
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
        *_latency_rows(tokens),
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


def latency_tokens(res: StudyResults) -> int:
    """The fixed generation length TTFT and TPOT were measured at (the study's setting where no run
    measured them)."""
    r = res.resources
    measured = r["latency_tokens"].dropna().unique() if "latency_tokens" in r.columns else []
    return int(measured[0]) if len(measured) else res.cfg.eval.latency_tokens


def resources_table(res: StudyResults) -> str:
    """The costs of each method, one table per phase (training, then evaluation), so a study of
    many methods stays readable: one column per method, one row per figure that applies."""
    r = res.resources
    kind = r["memory_kind"].iloc[0]

    def cell(method: str, phase: str, key: str, fmt) -> str:
        value = r[(r.method == method) & (r.phase == phase)].iloc[0].get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return NOT_MEASURED if phase == "eval" and key in LATENCY_KEYS else "n/a"
        return fmt(value)

    def shown(phase: str, key: str) -> bool:
        if phase == "eval" and key in LATENCY_KEYS:
            return True
        return key in r.columns and not r[r.phase == phase][key].isna().all()

    by_task = [
        (f"peak while evaluating {tasks.get(c.split('.', 1)[1], res.cfg).title} (MB)", c, lambda v: f"{v:,.1f}")
        for c in r.columns
        if c.startswith("peak_memory_mb.") and tasks.known(c.split(".", 1)[1], res.cfg)
    ]
    tables, missing = [], False
    for phase, heading in (("train", "Training"), ("eval", "Evaluation")):
        cols = [(row.method, row.phase) for row in r.itertuples() if row.phase == phase]
        if not cols:
            continue
        rows = [
            [name] + [cell(m, p, key, fmt) for m, p in cols]
            for name, key, fmt in _resource_rows(kind, latency_tokens(res)) + by_task
            if shown(phase, key)
        ]
        missing = missing or any(NOT_MEASURED in row for row in rows)
        tables += [f"### {heading}", "", table(["figure"] + [f"{label(m, res.cfg)} ({p})" for m, p in cols], rows), ""]
    notes = [memory_note(kind), *_notes(res, missing)]
    return "\n".join(
        ["## Model configurations and costs", "", *_cost_comparison(res), *tables, *[f"- {n}" for n in notes]]
    )


def _notes(res: StudyResults, missing: bool) -> list[str]:
    r, e = res.resources, res.cfg.eval
    notes = [
        "Total parameters count logical weights, so the 4-bit base reports the same total as its 16-bit twin; "
        "the adapter's parameters are included where one is loaded.",
        f"Latency at batch size 1, one {escape(e.latency_task)} item at a time over {e.latency_items} items, each "
        "pass after one untimed warm-up item. Per whole answer: at the task's token limit, stopping where the "
        "method stops, so a method that writes longer answers is slower by it; tokens/s in the evaluation column "
        f"is that pass's generated tokens per second. TTFT and TPOT: the same items generating exactly "
        f"{latency_tokens(res)} tokens each (end tokens suppressed, no stop strings), which compares the methods' "
        "speed free of their answers' lengths; TTFT is the prefill and the first token, TPOT each later token's "
        "decoding step, both stamped as generate hands the token over (on a GPU after synchronizing the device).",
        "n/a: the figure does not apply to that phase (no training for the base; no latency while training; "
        "no k-bit preparation for the 16-bit base).",
    ]
    if missing:
        notes.append(
            "not measured: the evaluation timed no latency (the study has no generation task) or was recorded "
            "before TTFT and TPOT were measured (rerun its 03_evaluate step)."
        )
    if "peak_memory_mb_total" in r.columns and r["peak_memory_mb_total"].notna().any():
        notes.append(
            "Where a training ran in several processes (train.processes), its peak is its largest process's, what "
            "one device must hold, and the total adds every process's peak (on a CPU each process's resident set "
            "also counts the libraries it shares with the others); its throughput counts every process's tokens."
        )
    return notes


def _cost_comparison(res: StudyResults) -> list[str]:
    """Each executive-summary pair's memory and time, relative to each other, in full."""
    sentences = [
        sentence
        for a, b in trained_headline_pairs(res)
        for sentence in cost_sentences(res.resources, methods.get(a, res.cfg), methods.get(b, res.cfg))[0]
    ]
    return [*[f"- {s}" for s in sentences], ""] if sentences else []
