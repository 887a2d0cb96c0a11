#!/usr/bin/env python
"""Evaluation throughput: batched against one item at a time, with identical results.

For the model of a study's params file (its 16-bit base):
  - generation: the study's OpenMath prompts generated greedily one at a time, then in
    batches (--batch-size, default 16), through lorastudy.evaluate.generate; the outputs
    must be the same text, item by item;
  - ARC scoring: every choice scored alone (one forward pass per context + choice, as a
    reference), then as the study scores them (lorastudy.evaluate.score_choices: batched,
    each question's context computed once); the picks must be the same, item by item.
Items are synthetic and offline: OpenMath problems from the study's generator, and
ARC-style questions that are all distinct with choices of several words
(lorastudy.synthetic.arc_science_rows). Target on 2 CPU cores: batched generation at batch
16 at least 5 times faster than one at a time.

    python benchmarks/eval_throughput.py params/smoke.yaml --json runs/benchmarks/eval-smoke.json
"""

from __future__ import annotations

import statistics
import sys
import time

import torch  # noqa: E402
from common import ROOT, emit, load_average, load_study, log, study_parser, versions

from lorastudy import resources, tasks  # noqa: E402
from lorastudy.evaluate.generation import generate  # noqa: E402
from lorastudy.evaluate.loglikelihood import continuation_tokens, score_choices  # noqa: E402
from lorastudy.evaluate.step import load_for_eval  # noqa: E402
from lorastudy.models.loading import load_tokenizer  # noqa: E402
from lorastudy.models.source import model_path  # noqa: E402
from lorastudy.tasks import synthetic  # noqa: E402

GENERATION_TARGET = 5.0


def timed(fn, *args, **kwargs):
    resources.synchronize()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    resources.synchronize()
    return out, time.perf_counter() - start


def generation(model, tokenizer, cfg, n: int, batch_size: int) -> dict:
    task = tasks.get("openmath")
    rows = [{"id": f"m{i}", **r} for i, r in enumerate(synthetic.openmath_rows(n, 4321))]
    prompts = [task.prompt(tokenizer, r) for r in rows]
    max_new = next((t.max_new_tokens for t in cfg.tasks if t.name == task.name and t.max_new_tokens), None)
    max_new = max_new or task.max_new_tokens
    generate(model, tokenizer, prompts[:1], max_new, task.stop_strings, 1)  # warm-up
    single, single_s = timed(
        lambda: [generate(model, tokenizer, [p], max_new, task.stop_strings, 1)[0] for p in prompts]
    )
    batched, batched_s = timed(generate, model, tokenizer, prompts, max_new, task.stop_strings, batch_size)
    same = sum(a["output"] == b["output"] for a, b in zip(single, batched))
    tokens = sum(b["generated_tokens"] for b in batched)
    return {
        "items": n,
        "batch_size": batch_size,
        "max_new_tokens": max_new,
        "generated_tokens": tokens,
        "one_at_a_time_s": single_s,
        "batched_s": batched_s,
        "speedup": single_s / batched_s,
        "target_speedup": GENERATION_TARGET,
        "meets_target": single_s / batched_s >= GENERATION_TARGET,
        "identical_outputs": same,
        "all_identical": same == n,
        "batched_tokens_per_s": tokens / batched_s,
    }


@torch.no_grad()
def per_choice_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """The reference: one unpadded forward pass over context + continuation."""
    ctx, cont = continuation_tokens(tokenizer, context, continuation)
    logits = model(input_ids=torch.tensor([ctx + cont], device=model.device)).logits[0].float()
    logprobs = torch.log_softmax(logits[len(ctx) - 1 : -1], dim=-1)
    return float(logprobs[torch.arange(len(cont)), torch.tensor(cont)].sum())


def arc(model, tokenizer, n: int, batch_size: int) -> dict:
    task = tasks.get("arc_challenge")
    rows = synthetic.arc_science_rows(n, 1234)
    requests = [[(task.prompt(tokenizer, r), c) for c in task.choices(r)] for r in rows]
    reference, single_s = timed(
        lambda: [[per_choice_loglikelihood(model, tokenizer, c, x) for c, x in item] for item in requests]
    )
    items, batched_s = timed(score_choices, model, tokenizer, task, rows, batch_size, lambda k: None)
    expected = [task.score(r, ll)["scores"] for r, ll in zip(rows, reference)]
    same = sum(e == it["scores"] for e, it in zip(expected, items))
    diffs = [abs(a - b) for ref, it in zip(reference, items) for a, b in zip(ref, it["loglikelihoods"])]
    tokens = [len(continuation_tokens(tokenizer, c, x)[1]) for item in requests for c, x in item]
    return {
        "items": n,
        "choices": sum(len(r) for r in requests),
        "continuation_tokens_median": statistics.median(tokens),
        "batch_size": batch_size,
        "one_pass_per_choice_s": single_s,
        "batched_s": batched_s,
        "speedup": single_s / batched_s,
        "identical_scores": same,
        "all_identical": same == n,
        "max_abs_loglikelihood_difference": max(diffs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=32, help="OpenMath prompts to generate (default 32)")
    parser.add_argument("--arc-items", type=int, default=100, help="ARC-style questions to score (default 100)")
    parser.add_argument("--batch-size", type=int, default=16, help="generation batch (default 16)")
    args = parser.parse_args(argv)
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    problems += [
        f"--{k.replace('_', '-')}: must be positive"
        for k in ("items", "arc_items", "batch_size")
        if getattr(args, k) < 1
    ]
    if problems:
        parser.error("; ".join(problems))
    path = model_path(cfg.model, ROOT / "runs" / "_models", cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    model = load_for_eval(path, cfg.model, None, None)
    log(f"{cfg.model.name}: generating {args.items} items one at a time and at batch {args.batch_size} ...")
    load_before = load_average()
    gen = generation(model, tokenizer, cfg, args.items, args.batch_size)
    log(f"scoring {args.arc_items} ARC-style items per choice and batched (batch {cfg.eval.batch_size}) ...")
    scores = arc(model, tokenizer, args.arc_items, cfg.eval.batch_size)
    emit(
        {
            "benchmark": "eval_throughput",
            "model": cfg.model.name,
            "dtype": cfg.model.dtype,
            "device": resources.device_name(),
            "generation": gen,
            "arc": scores,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "versions": versions(),
        },
        args.json,
    )
    return 0 if gen["all_identical"] and scores["all_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
