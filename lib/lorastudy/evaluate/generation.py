"""Generation tasks (OpenMath, SQuAD): batched greedy generation that stops on the model's end
tokens (latency at batch size 1 is in latency.py)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.loading import end_token_ids


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int,
    stop_strings: tuple[str, ...],
    batch_size: int,
    progress: Callable[[int], None] = lambda n: None,
) -> list[dict]:
    """Greedy generation in left-padded batches (KV cache on); prompts sorted by length so a
    batch wastes little on padding. Generation stops at any of the model's end tokens or a
    stop string; the output is cut at the first stop string. Each result records how many
    tokens were generated and whether the output hit the token limit (neither an end token
    nor a stop string within max_new_tokens), so truncated answers are counted, not hidden."""
    tokenizer.padding_side = "left"
    ends = end_token_ids(model, tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[dict] = [{} for _ in prompts]
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        batch = tokenizer([prompts[i] for i in index], return_tensors="pt", padding=True, add_special_tokens=False).to(
            model.device
        )
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_cache=True,
            stop_strings=list(stop_strings) or None,
            tokenizer=tokenizer,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=ends,
            temperature=None,
            top_p=None,
            top_k=None,
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        for row, i in enumerate(index):
            results[i] = _generated(tokenizer, new_tokens[row].tolist(), ends, stop_strings)
        progress(len(index))
    return results


def _generated(tokenizer, ids: list[int], ends: list[int], stop_strings: tuple[str, ...]) -> dict:
    """One sequence's new tokens: up to its first end token, or without the padding that
    fills a sequence that finished (on a stop string) before the rest of its batch."""
    end_at = next((k for k, token in enumerate(ids) if token in ends), None)
    if end_at is not None:
        ids = ids[: end_at + 1]
    else:
        while ids and ids[-1] == tokenizer.pad_token_id:
            ids = ids[:-1]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    stopped = any(stop in text for stop in stop_strings)
    for stop in stop_strings:
        text = text.split(stop)[0]
    return {"output": text.strip(), "generated_tokens": len(ids), "hit_token_limit": end_at is None and not stopped}
