"""The training examples' lengths in the model's own tokenizer, for the data step's summary and
its warning when data.max_seq_len cuts answers."""

from __future__ import annotations

from typing import Any

from .. import tasks
from ..study.schema import StudyConfig
from ..tasks import training_ids


def training_lengths(cfg: StudyConfig, rows: list[dict], tokenizer) -> dict[str, Any]:
    """The training examples' lengths in the model's own tokenizer (prompt with its chat
    template, answer, turn end), and how many data.max_seq_len cuts: a cut answer loses its
    final answer and its end token, so the model learns neither."""
    from ..models.loading import assistant_turn_end

    task, turn_end = tasks.get(cfg.data.train_task, cfg), assistant_turn_end(tokenizer)
    examples = [training_ids(tokenizer, task, row, turn_end) for row in rows]
    lengths = sorted(len(ids) for ids, _ in examples)
    cut = sum(n > cfg.data.max_seq_len for n in lengths)

    def quantile(q: float) -> int:
        return lengths[min(len(lengths) - 1, int(q * len(lengths)))]

    return {
        "examples": len(lengths),
        "median": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "max": lengths[-1],
        "max_seq_len": cfg.data.max_seq_len,
        "cut": cut,
        "cut_share": cut / len(lengths),
        "prompt_too_long": sum(first_label(labels) >= cfg.data.max_seq_len - 1 for _, labels in examples),
    }


def first_label(labels: list[int]) -> int:
    """Where an example's loss starts: a prompt this long or longer leaves no answer to learn."""
    return next((i for i, label in enumerate(labels) if label != -100), len(labels))


# More than this share of training examples cut by data.max_seq_len is warned about.
CUT_WARNING_SHARE = 0.01
