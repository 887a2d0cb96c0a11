"""Evaluation: ARC by log-likelihood (as lm-evaluation-harness scores arc_challenge),
OpenMath and SQuAD by batched greedy generation, plus latency and throughput.

QLoRA is evaluated the way it was trained: its adapter on the 4-bit base.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import resources
from .config import ModelConfig, QuantConfig, StudyConfig, params_hash
from .io import StudyPaths, atomic_write_json, write_jsonl
from .metrics import extract_number, numbers_match, parse_expected_answer, squad_em, squad_f1
from .models import end_token_ids, load_model, load_tokenizer, model_path
from .tasks import TASKS, arc_context, openmath_user_message, squad_user_message
from .train import chat_prompt


def load_for_eval(path: str, model_cfg: ModelConfig, quant: QuantConfig | None, adapter: Path | None):
    model = load_model(path, model_cfg, quant)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model


# ------------------------------------------------------------------------- log-likelihood


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


@torch.no_grad()
def loglikelihoods(model, tokenizer, requests: list[tuple[str, str]]) -> list[float]:
    """Summed log-probability of each continuation given its context, all in one forward pass."""
    pairs = [continuation_tokens(tokenizer, c, x) for c, x in requests]
    rows = [(ctx + cont)[:-1] for ctx, cont in pairs]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=model.device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
    logprobs = torch.log_softmax(model(input_ids=input_ids, attention_mask=mask).logits.float(), dim=-1)
    scores = []
    for i, (ctx, cont) in enumerate(pairs):
        # The logits at position t predict token t + 1: the continuation starts after the context.
        positions = torch.arange(len(ctx) - 1, len(ctx) - 1 + len(cont), device=model.device)
        targets = torch.tensor(cont, device=model.device)
        scores.append(float(logprobs[i, positions, targets].sum()))
    return scores


def score_arc(model, tokenizer, rows: list[dict], batch_size: int, progress: Callable[[int], None]) -> list[dict]:
    """acc: argmax of summed log-likelihood; acc_norm: argmax of it over the choice's length in
    characters. Each forward pass holds whole questions (all their choices), up to batch_size rows."""
    items, group = [], []

    def flush() -> None:
        requests = [(arc_context(r["question"]), " " + c) for r in group for c in r["choices"]["text"]]
        scores = loglikelihoods(model, tokenizer, requests)
        offset = 0
        for row in group:
            texts, labels = row["choices"]["text"], row["choices"]["label"]
            ll = scores[offset : offset + len(texts)]
            offset += len(texts)
            gold = labels.index(row["answerKey"])
            pick = int(np.argmax(ll))
            pick_norm = int(np.argmax([s / len(t) for s, t in zip(ll, texts)]))
            items.append(
                {
                    "id": row["id"],
                    "prompt": arc_context(row["question"]),
                    "choices": texts,
                    "output": labels[pick_norm],
                    "extracted": labels[pick_norm],
                    "references": [row["answerKey"]],
                    "loglikelihoods": ll,
                    "scores": {"acc": float(pick == gold), "acc_norm": float(pick_norm == gold)},
                }
            )
        progress(len(group))
        group.clear()

    for row in rows:
        if group and sum(len(r["choices"]["text"]) for r in group) + len(row["choices"]["text"]) > batch_size:
            flush()
        group.append(row)
    if group:
        flush()
    return items


# ------------------------------------------------------------------------- generation


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


def openmath_prompt(tokenizer, row: dict) -> str:
    return chat_prompt(tokenizer, openmath_user_message(row["problem"]))


def squad_prompt(tokenizer, row: dict) -> str:
    return chat_prompt(tokenizer, squad_user_message(row["context"], row["question"]))


def score_openmath(row: dict, output: str) -> dict:
    expected = parse_expected_answer(row["expected_answer"])
    extracted = extract_number(output)
    return {
        "extracted": extracted,
        "references": [row["expected_answer"]],
        "abs_error": None if extracted is None else abs(extracted - expected),
        "scores": {
            "exact_match": float(numbers_match(extracted, expected)),
            "no_answer_rate": float(extracted is None),
        },
    }


def score_squad(row: dict, output: str) -> dict:
    refs = row["answers"]["text"]
    return {
        "extracted": output,
        "references": refs,
        "scores": {"exact_match": squad_em(output, refs), "f1": squad_f1(output, refs)},
    }


GENERATIVE = {"openmath": (openmath_prompt, score_openmath), "squad": (squad_prompt, score_squad)}


def run_task(
    model,
    tokenizer,
    task: str,
    rows: list[dict],
    batch_size: int,
    max_new_tokens: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluate one task; returns its metrics, per-item predictions and throughput."""
    spec = TASKS[task]
    done = {"n": 0}
    every = max(1, len(rows) // 4)

    def progress(n: int) -> None:
        before, done["n"] = done["n"], done["n"] + n
        if done["n"] // every > before // every or done["n"] == len(rows):
            log(f"  {task}: {done['n']}/{len(rows)} items")

    resources.synchronize()
    start = time.perf_counter()
    if spec.kind == "loglikelihood":
        items = score_arc(model, tokenizer, rows, batch_size, progress)
    else:
        build_prompt, score = GENERATIVE[task]
        prompts = [build_prompt(tokenizer, r) for r in rows]
        outputs = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens or spec.default_max_new_tokens,
            spec.stop_strings,
            batch_size,
            progress,
        )
        items = [{"id": r["id"], "prompt": p, **o, **score(r, o["output"])} for r, p, o in zip(rows, prompts, outputs)]
    resources.synchronize()
    wall_s = time.perf_counter() - start
    metrics = {m.name: float(np.mean([it["scores"][m.name] for it in items])) for m in spec.metrics if m.per_item}
    if task == "openmath":
        errors = [it["abs_error"] for it in items if it["abs_error"] is not None]
        # Undefined when no output has a number; left out rather than reported as 0.
        if errors:
            metrics["median_abs_error"] = float(statistics.median(errors))
    return {"metrics": metrics, "n": len(items), "wall_s": wall_s, "items_per_s": len(items) / wall_s, "items": items}


@torch.no_grad()
def measure_latency(model, tokenizer, task: str, rows: list[dict], max_new_tokens: int | None) -> dict:
    """Per-item latency at batch size 1 on a fixed subset (after one untimed warm-up item)."""
    spec = TASKS[task]
    build_prompt, _ = GENERATIVE[task]
    prompts = [build_prompt(tokenizer, r) for r in rows]
    max_new = max_new_tokens or spec.default_max_new_tokens
    generate(model, tokenizer, prompts[:1], max_new, spec.stop_strings, 1)
    latencies, tokens = [], []
    for prompt in prompts:
        resources.synchronize()
        start = time.perf_counter()
        out = generate(model, tokenizer, [prompt], max_new, spec.stop_strings, 1)[0]
        resources.synchronize()
        latencies.append(1000.0 * (time.perf_counter() - start))
        tokens.append(out["generated_tokens"])
    return {
        "task": task,
        "items": len(prompts),
        "ms": latencies,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "generated_tokens": int(sum(tokens)),
        "generated_tokens_per_s": 1000.0 * sum(tokens) / sum(latencies),
    }


# ------------------------------------------------------------------------- the eval step


def evaluate(
    cfg: StudyConfig, method: str, seed: int, run: str, paths: StudyPaths, log: Callable[[str], None] = print
) -> dict:
    """Evaluate one run on every task; write predictions/<run>/<task>.jsonl and eval/<run>.json."""
    from transformers import set_seed

    from .data import load_eval

    set_seed(seed)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    adapter = paths.adapter(run) if method != "base" else None
    if adapter is not None and not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{adapter}: no trained adapter; run the 02_train step for {run} first")
    with resources.measure() as load:
        model = load_for_eval(path, cfg.model, cfg.quant if method == "qlora" else None, adapter)
    counts = resources.count_parameters(model)
    record: dict[str, Any] = {
        "run": run,
        "method": method,
        "seed": seed,
        "params_hash": params_hash(cfg.to_dict()),
        "model": path,
        "adapter": str(adapter) if adapter else None,
        "device": resources.device_name(),
        "total_params": counts["total_params"],
        "adapter_params": sum(p.numel() for n, p in model.named_parameters() if "lora_" in n),
        "weights_bytes": resources.weights_bytes(model),
        "load": {"wall_s": load.wall_s, "peak": load.peak},
        "tasks": {},
    }
    predictions = {}
    with resources.measure() as phase:
        for task_cfg in cfg.tasks:
            rows = load_eval(paths.data, task_cfg.name)
            log(f"evaluating {run} on {task_cfg.name} ({len(rows)} items)")
            result = run_task(model, tokenizer, task_cfg.name, rows, cfg.eval.batch_size, task_cfg.max_new_tokens, log)
            predictions[task_cfg.name] = result.pop("items")
            record["tasks"][task_cfg.name] = result
        latency_task = cfg.eval.latency_task
        if any(t.name == latency_task for t in cfg.tasks):
            rows = load_eval(paths.data, latency_task)[: cfg.eval.latency_items]
            log(f"timing {len(rows)} {latency_task} items one at a time")
            record["latency"] = measure_latency(
                model, tokenizer, latency_task, rows, cfg.task(latency_task).max_new_tokens
            )
    record.update(
        {
            "wall_s": phase.wall_s,
            "peak": phase.peak,
            "memory_kind": phase.peak["memory_kind"],
            "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        }
    )
    # Written only now, the record last, so an interrupted evaluation leaves no partial results.
    for task, items in predictions.items():
        write_jsonl(paths.predictions(run, task), items)
    atomic_write_json(paths.eval_json(run), record)
    summary = ", ".join(
        f"{t} {TASKS[t].primary} {r['metrics'][TASKS[t].primary]:.3f}" for t, r in record["tasks"].items()
    )
    log(f"evaluated {run} in {phase.wall_s:.1f} s: {summary}")
    return record
