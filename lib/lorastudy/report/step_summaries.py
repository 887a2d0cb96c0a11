"""What each step's notebook shows of its own outputs: the data, the training, the evaluation,
the quantization errors."""

from __future__ import annotations

from .. import tasks
from .format import integer
from .markdown import code, escape, table


def data_section(summary: dict) -> str:
    rows = []
    for name, d in summary["datasets"].items():
        skipped = "; ".join(f"{escape(reason)}: {count:,}" for reason, count in d.get("skipped", {}).items()) or "none"
        rows.append(
            [
                d.get("title") or (tasks.get(name).title if name in tasks.TASKS else escape(name)),
                integer(d.get("loaded")),
                skipped,
                integer(d.get("train"), "\u2014"),
                _evaluated(d),
                integer(d.get("overlap_with_train"), "\u2014"),
            ]
        )
    return "\n".join(
        [
            "## Data",
            "",
            f"{_source_sentence(summary)} Rows with missing fields or empty references are skipped and counted; "
            + "".join(f"{note}; " for note in _evaluable_notes(summary))
            + "held-out problems are never in the training set (overlap checked on normalised text). Every "
            "evaluation set is a seeded random sample of the usable items (its ids are in the predictions), never "
            "the head of a split.",
            "",
            table(
                ["dataset", "rows loaded", "skipped (reason: count)", "train", "evaluated", "overlap with training"],
                rows,
                ["l", "r", "l", "r", "r", "r"],
            ),
            *_length_lines(summary.get("train_lengths")),
        ]
    )


def _evaluable_notes(summary: dict) -> list[str]:
    """What each built-in task's evaluation keeps of its rows, where it keeps fewer than all."""
    declared = [tasks.get(name) for name in summary["datasets"] if name in tasks.TASKS]
    return [task.evaluable_note for task in declared if task.evaluable_note]


def _source_sentence(summary: dict) -> str:
    """Where the rows came from: the study's data source, and its own training file where it names one
    (whose duplicate rows and rows with an empty turn are skipped and counted like any other)."""
    own = summary.get("train_data")
    if own is None:
        return f"Source: {escape(summary['source'])}."
    text = (
        f"Training rows from {code(own['path'])} ({escape(own['format'])} format; its held-out rows are "
        "evaluated as a task of their own)"
    )
    datasets = summary["datasets"].values()
    if any("from" not in d for d in datasets):  # written before each dataset named where it came from
        return f"{text}; other data: {escape(summary['source'])}, or each lm-eval task's own."
    others = [escape(d.get("title") or "") for d in datasets if d["from"] == summary["source"]]
    if others:
        text += f"; {', '.join(others)}: {escape(summary['source'])} data"
    if any(d["from"] == "lm-eval" for d in datasets):
        text += "; each lm-eval task's documents from its own files"
    return text + "."


def _length_lines(lengths: dict | None) -> list[str]:
    """The training examples' token lengths, and a warning when the length limit cuts more than
    1% of them (a cut answer loses its final answer and its end token)."""
    if not lengths:
        return []
    text = (
        f"Training examples in the model's tokenizer (prompt with its chat template, answer and turn end): "
        f"median {lengths['median']:,} tokens, 90th percentile {lengths['p90']:,}, 99th {lengths['p99']:,}, "
        f"longest {lengths['max']:,}; data.max_seq_len {lengths['max_seq_len']:,} cuts {lengths['cut']:,} of "
        f"{lengths['examples']:,} ({lengths['cut_share']:.1%})."
    )
    if lengths["cut_share"] > 0.01:
        text += (
            " **Warning:** more than 1% of the training examples are cut, so the model does not see their final "
            "answers and end tokens; raise data.max_seq_len."
        )
    return ["", text]


def _evaluated(d: dict) -> str:
    if d.get("eval") is None:
        return "\u2014"
    if d.get("sampled_from") is None:
        return integer(d["eval"])
    return f"{integer(d['eval'])} of {integer(d['sampled_from'])}"


def train_summary(record: dict) -> str:
    """What one training run measured, for the 02_train notebook."""
    stages = record["stages"]
    rows = [
        [
            "trainable / total parameters",
            f"{record['trainable_params']:,} / {record['total_params']:,} ({record['pct_trainable']:.2f}%)",
        ],
        ["weights footprint after load", f"{stages['load']['weights_bytes'] / 2**20:,.2f} MB"],
    ]
    if "prepare" in stages:
        rows.append(["weights after k-bit preparation", f"{stages['prepare']['weights_bytes'] / 2**20:,.2f} MB"])
    if stages["quantized"]:
        rows.append(["bits per quantized weight", f"{stages['quantized']['bits_per_quantized_weight']:.3f}"])
    reconstruction = stages["quantized"].get("reconstruction")
    if reconstruction:
        rows.append(
            [
                f"relative reconstruction error of the 4-bit base ({reconstruction['layers']} layers)",
                f"{reconstruction['relative_error']:.4f}",
            ]
        )
    rows += [
        [f"peak memory while training ({record['memory_kind']})", f"{record['peak_memory_mb']:,.1f} MB"],
        ["wall time", f"{record['wall_s']:,.1f} s"],
        ["optimizer steps / tokens seen", f"{record['optimizer_steps']:,} / {record['tokens_seen']:,}"],
        ["throughput", f"{record['tokens_per_s']:,.0f} tokens/s"],
        ["final logged loss", f"{record['final_loss']:.4f}"],
        ["adapter on disk", f"{record['adapter_bytes'] / 2**20:,.2f} MB"],
    ]
    if record.get("final_validation_loss") is not None:
        rows.append(["final validation loss", f"{record['final_validation_loss']:.4f}"])
    if record.get("resumed_from"):
        rows.append(["resumed from", record["resumed_from"]])
    saved = record.get("checkpoints") or {}
    if saved.get("saved"):
        each, size = sum(saved["save_s"]) / saved["saved"], saved["bytes"][-1] / 2**20
        rows.append(["checkpoints saved", f"{saved['saved']} ({each:.2f} s, {size:,.1f} MB each)"])
    return f"### Trained {code(record['run'])}\n\n" + table(["", ""], rows, ["l", "r"])


def eval_summary(record: dict) -> str:
    """What one evaluation run measured, for the 03_evaluate notebook."""
    rows = [
        [
            r.get("title") or (tasks.get(t).title if t in tasks.TASKS else escape(t)),
            ", ".join(f"{k} {v:.3f}" for k, v in r["metrics"].items()),
            str(r["n"]),
            f"{r['items_per_s']:,.1f}",
        ]
        for t, r in record["tasks"].items()
    ]
    text = f"### Evaluated {code(record['run'])}\n\n" + table(
        ["task", "metrics", "n", "items/s"], rows, ["l", "l", "r", "r"]
    )
    if "latency" in record:
        lat = record["latency"]
        text += (
            f"\n\nLatency at batch size 1 on {lat['items']} {lat['task']} items, per whole answer: "
            f"p50 {lat['p50_ms']:,.1f} ms, p95 {lat['p95_ms']:,.1f} ms, {lat['generated_tokens_per_s']:,.0f} "
            f"generated tokens/s. {_fixed_length_sentence(lat.get('fixed_length'))} "
            f"Peak memory ({record['memory_kind']}): {record['peak_memory_mb']:,.1f} MB."
        )
    return text


def _fixed_length_sentence(fixed: dict | None) -> str:
    """TTFT and TPOT at the fixed generation length, or that they were not measured."""
    if not fixed:
        return "TTFT and TPOT: not measured (an evaluation recorded before fixed-length timing)."
    return (
        f"Generating exactly {fixed['tokens']} tokens: time to first token p50 {fixed['ttft_p50_ms']:,.1f} ms, "
        f"p95 {fixed['ttft_p95_ms']:,.1f} ms; time per output token p50 {fixed['tpot_p50_ms']:,.2f} ms, "
        f"p95 {fixed['tpot_p95_ms']:,.2f} ms."
    )


def quantization_summary(summary: dict) -> str:
    """What the 01_quantization step measured: each format's pooled error and bits per weight."""
    rows = [
        [
            f["title"],
            f"{f['relative_error']:.4f}",
            f"{f['bits_per_weight']:.3f}",
            f"{f['stored_bytes'] / 2**20:,.2f} MB",
        ]
        for f in summary["formats"].values()
    ]
    first = next(iter(summary["formats"].values()))
    return (
        f"### Quantization formats on {first['layers']} linear layers ({first['weights']:,} weights, "
        f"{escape(summary['dtype'])})\n\n"
        + table(["format", "relative error", "bits per weight", "stored"], rows, ["l", "r", "r", "r"])
        + f"\n\nMeasured on {escape(summary['device'])} in {summary['wall_s']:,.1f} s."
    )
