"""Log-likelihood tasks (ARC), scored as lm-evaluation-harness scores arc_challenge: every
choice as a continuation of the item's context."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..tasks import Task


def continuation_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's split: encode the context and context + continuation; the
    continuation's tokens are the tail of the whole after the context's length. Trailing
    whitespace of the context moves to the continuation first, as the harness does."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    context_ids = tokenizer(context, add_special_tokens=False).input_ids
    return whole[: len(context_ids)], whole[len(context_ids) :]


def loglikelihoods(model, tokenizer, requests: list[tuple[str, str]]) -> list[float]:
    """Summed log-probability of each continuation given its context, both text, split into
    tokens as lm-evaluation-harness splits them (continuation_tokens)."""
    pairs = [continuation_tokens(tokenizer, c, x) for c, x in requests]
    return token_loglikelihoods(model, tokenizer.pad_token_id, pairs)


@torch.no_grad()
def token_loglikelihoods(model, pad_token_id: int, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log-probability of each continuation's token ids given its context's.

    Choices of one question share its context, so the context runs once: a first pass over the
    distinct contexts (left-padded) keeps their KV cache and the log-probabilities of the next
    token; a second pass runs every continuation after its context's cache. Log-probabilities
    are taken only where a continuation token is predicted, never over the whole sequence
    (with a 150k-token vocabulary, those would dwarf the weights). Equal, up to float rounding,
    to scoring each context + continuation whole as lm-evaluation-harness does."""
    contexts = list(dict.fromkeys(tuple(ctx) for ctx, _ in pairs))
    which = torch.tensor([contexts.index(tuple(ctx)) for ctx, _ in pairs], device=model.device)
    ids, mask = _padded([list(c) for c in contexts], pad_token_id, model.device, left=True)
    out = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask), use_cache=True, logits_to_keep=1)
    next_token = torch.log_softmax(out.logits[:, -1].float(), dim=-1)
    first = torch.tensor([cont[0] for _, cont in pairs], device=model.device)
    scores = next_token[which, first]
    longer = [i for i, (_, cont) in enumerate(pairs) if len(cont) > 1]
    if not longer:
        return scores.tolist()
    name = cache_field(out)
    cache = out[name]
    cache.batch_select_indices(which[longer])
    tails, tail_mask = _padded([pairs[i][1][:-1] for i in longer], pad_token_id, model.device, left=False)
    start = mask[which[longer]].sum(dim=1, keepdim=True)
    logits = model(
        input_ids=tails,
        attention_mask=torch.cat([mask[which[longer]], tail_mask], dim=1),
        position_ids=start + torch.arange(tails.shape[1], device=model.device),
        use_cache=True,
        **{name: cache},
    ).logits
    # Each continuation's later tokens, gathered on the device: one read back for the batch.
    targets, _ = _padded([pairs[i][1][1:] for i in longer], 0, model.device, left=False)
    logits = logits.float()
    logprobs = logits.gather(2, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    scores[torch.tensor(longer, device=model.device)] += (logprobs * tail_mask).sum(dim=1)
    return scores.tolist()


def cache_field(out) -> str:
    """The name a model's output gives its KV cache, which the next call takes back by the same
    name: `past_key_values` before transformers 5.24, `cache` from 5.24 on (which reads the old
    name, deprecated, until 5.40). Passing `cache=` to 5.17 is silently ignored, so the name is
    read from the output rather than assumed."""
    return "cache" if "cache" in out.keys() else "past_key_values"


def _padded(rows: list[list[int]], pad: int, device, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    fill = [[pad] * (width - len(r)) for r in rows]
    ids = [f + r if left else r + f for r, f in zip(rows, fill)]
    mask = [[0] * len(f) + [1] * len(r) if left else [1] * len(r) + [0] * len(f) for r, f in zip(rows, fill)]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding, so a padded row is computed as if it were alone."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def score_choices(
    model, tokenizer, task: Task, rows: list[dict], batch_size: int, progress: Callable[[int], None]
) -> list[dict]:
    """Score a log-likelihood task: every choice's summed log-likelihood as a continuation of
    the item's context, then the task's scorer. Each forward pass holds whole items (all their
    choices), up to batch_size rows."""
    items, group = [], []

    def flush() -> None:
        requests = [(task.prompt(tokenizer, r), c) for r in group for c in task.choices(r)]
        scores = loglikelihoods(model, tokenizer, requests)
        offset = 0
        for row in group:
            n = len(task.choices(row))
            ll, offset = scores[offset : offset + n], offset + n
            prompt = task.prompt(tokenizer, row)
            items.append({"id": row["id"], "question": task.question(row), "prompt": prompt, **task.score(row, ll)})
        progress(len(group))
        group.clear()

    for row in rows:
        if group and sum(len(task.choices(r)) for r in group) + len(task.choices(row)) > batch_size:
            flush()
        group.append(row)
    if group:
        flush()
    return items
