"""Latency at batch size 1, on a fixed subset of the latency task's items, in two passes.

Per item: each whole answer at the task's token limit, stopping where the model stops. That is
what a user of this task waits, but a method that writes longer answers is slower by it, so it
confounds speed with verbosity. Fixed length, as the field reports latency: every item generates
exactly `eval.latency_tokens` tokens (end tokens suppressed, no stop strings), and a streamer
stamps each token as `generate` hands it over, after the device has finished it; time to first
token (TTFT) is the prefill and the first token, time per output token (TPOT) the decoding steps
after it, per token. Both passes follow one untimed warm-up: the first item at fixed length, the
same batch-1 generation the passes time (a warm-up of the whole answer took as long as a timed
item, 5.7 s for a base that writes to the token limit, and the second pass needs none after the
first pass's items).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from transformers.generation.streamers import BaseStreamer

from .. import resources
from ..models.loading import end_token_ids
from ..tasks import Task
from .generation import generate


@torch.no_grad()
def measure_latency(model, tokenizer, task: Task, rows: list[dict], max_new_tokens: int | None, tokens: int) -> dict:
    """Both passes over `rows`; `tokens` is the fixed generation length (eval.latency_tokens)."""
    prompts = [task.prompt(tokenizer, r) for r in rows]
    max_new = max_new_tokens or task.max_new_tokens
    time_fixed_length(model, tokenizer, prompts[0], tokens)  # the warm-up
    latencies, counts = [], []
    for prompt in prompts:
        resources.synchronize()
        start = time.perf_counter()
        out = generate(model, tokenizer, [prompt], max_new, task.stop_strings, 1)[0]
        resources.synchronize()
        latencies.append(1000.0 * (time.perf_counter() - start))
        counts.append(out["generated_tokens"])
    return {
        "task": task.name,
        "items": len(prompts),
        "ms": latencies,
        "item_tokens": counts,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "generated_tokens": int(sum(counts)),
        "generated_tokens_per_s": 1000.0 * sum(counts) / sum(latencies),
        "fixed_length": fixed_length_latency(model, tokenizer, prompts, tokens),
    }


def fixed_length_latency(model, tokenizer, prompts: list[str], tokens: int) -> dict:
    """TTFT and TPOT per item, and their p50 and p95, generating exactly `tokens` tokens each
    (after measure_latency's warm-up)."""
    timed = [time_fixed_length(model, tokenizer, p, tokens) for p in prompts]
    ttft, tpot = [t["ttft_ms"] for t in timed], [t["tpot_ms"] for t in timed]
    return {
        "tokens": tokens,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "total_ms": [t["total_ms"] for t in timed],
        "generated": [t["generated"] for t in timed],
        "ttft_p50_ms": float(np.percentile(ttft, 50)),
        "ttft_p95_ms": float(np.percentile(ttft, 95)),
        "tpot_p50_ms": float(np.percentile(tpot, 50)),
        "tpot_p95_ms": float(np.percentile(tpot, 95)),
    }


class TokenClock(BaseStreamer):
    """A `generate` streamer that stamps each new token when it reaches the host. `generate` hands
    it the prompt first (batch x length, not a generated token), then each step's tokens (one
    per sequence); a batch of one is timed."""

    def __init__(self):
        self.stamps: list[float] = []

    def put(self, value) -> None:
        if value.dim() > 1:
            return
        # The tokens arrive copied to the host, which waits for them; on a GPU synchronize anyway,
        # so a stamp never precedes the work that made its token.
        resources.synchronize()
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


@torch.no_grad()
def time_fixed_length(model, tokenizer, prompt: str, tokens: int) -> dict:
    """One greedy generation of exactly `tokens` new tokens at batch size 1, timed: an end token
    is never chosen (min_new_tokens) and no stop string applies, so every method decodes as many
    steps whatever it would have answered. Raises if the count differs: a timing of another
    length would compare methods at different lengths again."""
    batch = tokenizer([prompt], return_tensors="pt", add_special_tokens=False).to(model.device)
    clock = TokenClock()
    resources.synchronize()
    start = time.perf_counter()
    out = model.generate(
        **batch,
        min_new_tokens=tokens,
        max_new_tokens=tokens,
        do_sample=False,
        use_cache=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=end_token_ids(model, tokenizer),
        streamer=clock,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    resources.synchronize()
    total = time.perf_counter() - start
    generated = int(out.shape[1] - batch["input_ids"].shape[1])
    if generated != tokens or len(clock.stamps) != tokens:
        raise RuntimeError(
            f"a fixed-length generation of {tokens} tokens produced {generated} ({len(clock.stamps)} streamed)"
        )
    first, last = clock.stamps[0], clock.stamps[-1]
    return {
        "ttft_ms": 1000.0 * (first - start),
        "tpot_ms": 1000.0 * (last - first) / (tokens - 1),
        "total_ms": 1000.0 * total,
        "generated": generated,
    }
