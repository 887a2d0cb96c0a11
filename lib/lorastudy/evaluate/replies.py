"""The likelihood of a reference reply: each held-out row of a study's own data is scored by the
negative log-likelihood per token of its last reply given the conversation before it, split into
tokens as training splits an answer from its prompt (the prompt, then the reply and the turn end)."""

from __future__ import annotations

from collections.abc import Callable

from ..models.loading import assistant_turn_end
from ..tasks import Task
from .loglikelihood import token_loglikelihoods


def reference_scores(
    model, tokenizer, task: Task, rows: list[dict], batch_size: int, progress: Callable[[int], None]
) -> list[dict]:
    """Per row: `nll_per_token` (lower is better) and how many tokens the reference has."""
    turn_end = assistant_turn_end(tokenizer)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False).input_ids

    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        pairs = [(ids(task.prompt(tokenizer, r)), ids(task.reference(r) + turn_end)) for r in batch]
        totals = token_loglikelihoods(model, tokenizer.pad_token_id, pairs)
        out += [
            {"nll_per_token": -total / len(reply), "reference_tokens": len(reply)}
            for (_, reply), total in zip(pairs, totals)
        ]
        progress(len(batch))
    return out
