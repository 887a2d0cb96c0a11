"""Evaluation of one run on the study's tasks, as each task's declaration says: log-likelihood
tasks (ARC, as lm-evaluation-harness scores arc_challenge) by scoring every choice as a
continuation of the context, generation tasks (OpenMath, SQuAD) by batched greedy generation;
then latency at batch size 1 and throughput.

A method is evaluated the way it was trained: its adapter on the base its declaration loads. A
cross-evaluation runs another method's adapter (the same seed's) on its own declaration's base;
a fully fine-tuned model is loaded as the base.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import methods, resources, tasks
from .config import ModelConfig, QuantConfig, Run, StudyConfig, params_hash
from .files import StudyPaths, atomic_write_json, write_jsonl
from .models import end_token_ids, load_model, load_tokenizer, model_path
from .tasks import Task


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
    """Summed log-probability of each continuation given its context.

    Choices of one question share its context, so the context runs once: a first pass over the
    distinct contexts (left-padded) keeps their KV cache and the log-probabilities of the next
    token; a second pass runs every continuation after its context's cache. Log-probabilities
    are taken only where a continuation token is predicted, never over the whole sequence
    (with a 150k-token vocabulary, those would dwarf the weights). Equal, up to float rounding,
    to scoring each context + continuation whole as lm-evaluation-harness does."""
    pairs = [continuation_tokens(tokenizer, c, x) for c, x in requests]
    contexts = list(dict.fromkeys(tuple(ctx) for ctx, _ in pairs))
    which = torch.tensor([contexts.index(tuple(ctx)) for ctx, _ in pairs], device=model.device)
    ids, mask = _padded([list(c) for c in contexts], tokenizer.pad_token_id, model.device, left=True)
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
    tails, tail_mask = _padded([pairs[i][1][:-1] for i in longer], tokenizer.pad_token_id, model.device, left=False)
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


def run_task(
    model,
    tokenizer,
    task: Task | str,
    rows: list[dict],
    batch_size: int,
    max_new_tokens: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Evaluate one task; returns its metrics, per-item predictions and throughput. A metric
    that is undefined on these items (a median over no defined value) is left out, not 0."""
    task = tasks.get(task) if isinstance(task, str) else task
    progress = _progress_log(task.name, len(rows), log)
    resources.synchronize()
    start = time.perf_counter()
    if task.kind == "loglikelihood":
        items = score_choices(model, tokenizer, task, rows, batch_size, progress)
    else:
        prompts = [task.prompt(tokenizer, r) for r in rows]
        max_new = max_new_tokens or task.max_new_tokens
        outputs = generate(model, tokenizer, prompts, max_new, task.stop_strings, batch_size, progress)
        items = [
            {
                "id": r["id"],
                "question": task.question(r),
                "prompt": p,
                **o,
                **task.score(r, o["output"], truncated=o["hit_token_limit"]),
            }
            for r, p, o in zip(rows, prompts, outputs)
        ]
    resources.synchronize()
    wall_s = time.perf_counter() - start
    metrics = {m.name: m.aggregate(items) for m in task.metrics}
    metrics = {name: value for name, value in metrics.items() if value is not None}
    return {"metrics": metrics, "n": len(items), "wall_s": wall_s, "items_per_s": len(items) / wall_s, "items": items}


def _progress_log(name: str, total: int, log: Callable[[str], None]) -> Callable[[int], None]:
    """A progress callback that logs about every quarter of the items."""
    done, every = {"n": 0}, max(1, total // 4)

    def progress(n: int) -> None:
        before, done["n"] = done["n"], done["n"] + n
        if done["n"] // every > before // every or done["n"] == total:
            log(f"  {name}: {done['n']}/{total} items")

    return progress


@torch.no_grad()
def measure_latency(model, tokenizer, task: Task, rows: list[dict], max_new_tokens: int | None) -> dict:
    """Per-item latency at batch size 1 on a fixed subset (after one untimed warm-up item)."""
    prompts = [task.prompt(tokenizer, r) for r in rows]
    max_new = max_new_tokens or task.max_new_tokens
    generate(model, tokenizer, prompts[:1], max_new, task.stop_strings, 1)
    latencies, tokens = [], []
    for prompt in prompts:
        resources.synchronize()
        start = time.perf_counter()
        out = generate(model, tokenizer, [prompt], max_new, task.stop_strings, 1)[0]
        resources.synchronize()
        latencies.append(1000.0 * (time.perf_counter() - start))
        tokens.append(out["generated_tokens"])
    return {
        "task": task.name,
        "items": len(prompts),
        "ms": latencies,
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "generated_tokens": int(sum(tokens)),
        "generated_tokens_per_s": 1000.0 * sum(tokens) / sum(latencies),
    }


# ------------------------------------------------------------------------- the eval step


def evaluate(cfg: StudyConfig, run: Run, paths: StudyPaths, log: Callable[[str], None] = print) -> dict:
    """Evaluate one run on every task; write predictions/<run>/<task>.jsonl and eval/<run>.json."""
    from transformers import set_seed

    from .data import pin_model

    set_seed(run.seed)
    method = methods.get(run.method)
    cfg = pin_model(method.settings(cfg), paths.data)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    base, model_cfg, adapter = trained_weights(cfg, run, paths, path)
    with resources.measure() as load:
        model = load_for_eval(base, model_cfg, method.quant(cfg), adapter)
    record = _model_record(cfg, run, base, adapter, model)
    record["load"] = {"wall_s": load.wall_s, "peak": load.peak}
    start = time.perf_counter()
    predictions = _evaluate_tasks(cfg, run, paths, model, tokenizer, record, log)
    wall_s = time.perf_counter() - start
    # Each task and the latency sample has its own peak; the phase's is the largest of them.
    peak = resources.largest_peak([r["peak"] for r in [*record["tasks"].values(), record.get("latency")] if r])
    record.update(
        {
            "wall_s": wall_s,
            "peak": peak,
            "memory_kind": peak["memory_kind"],
            "peak_memory_mb": resources.headline_peak_mb(peak),
        }
    )
    # Written only now, the record last, so an interrupted evaluation leaves no partial results.
    for task, items in predictions.items():
        write_jsonl(paths.predictions(run.name, task), items)
    atomic_write_json(paths.eval_json(run.name), record)
    summary = ", ".join(
        f"{t} {tasks.get(t).primary} {r['metrics'].get(tasks.get(t).primary, float('nan')):.3f}"
        for t, r in record["tasks"].items()
    )
    log(f"evaluated {run.name} in {wall_s:.1f} s: {summary}")
    return record


def trained_weights(cfg: StudyConfig, run: Run, paths: StudyPaths, path: str) -> tuple[str, ModelConfig, Path | None]:
    """What `run` evaluates: the base (`path`, or the whole model a full fine-tuning saved) with
    the settings to load it, and the adapter on it, if any: its own training's, or for a
    cross-evaluation that of the run it evaluates (the same seed of another method)."""
    trained = cfg.trained_run(run)
    if trained is None:
        return path, cfg.model, None
    weights = paths.adapter(trained.name)
    if methods.get(trained.method).trains_every_weight:
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights}: no trained model; run the 02_train step for {trained.name} first")
        # A local folder: the hub revision the base was pinned to does not apply to it.
        return str(weights), dataclasses.replace(cfg.model, revision=None), None
    if not (weights / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{weights}: no trained adapter; run the 02_train step for {trained.name} first")
    return path, cfg.model, weights


def _model_record(cfg: StudyConfig, run: Run, path: str, adapter: Path | None, model) -> dict[str, Any]:
    counts = resources.count_parameters(model)
    trained = cfg.trained_run(run)
    adapter_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    full = trained is not None and methods.get(trained.method).trains_every_weight
    return {
        "run": run.name,
        "method": run.method,
        "seed": run.seed,
        "params_hash": params_hash(cfg.resolved()),
        "model": path,
        "adapter": str(adapter) if adapter else None,
        "weights_from": trained.name if trained is not None else None,
        "device": resources.device_name(),
        "total_params": counts["total_params"],
        "adapter_params": adapter_params,
        # The parameters fine-tuning changed: the adapter's, or every one after full fine-tuning.
        "fine_tuned_params": counts["total_params"] if full else adapter_params,
        "weights_bytes": resources.weights_bytes(model),
        "tasks": {},
    }


def _evaluate_tasks(cfg, run: Run, paths: StudyPaths, model, tokenizer, record: dict, log) -> dict[str, list[dict]]:
    """Every task of the study, then latency; fills record and returns the predictions."""
    from .data import load_eval

    predictions = {}
    for task_cfg in cfg.tasks:
        rows = load_eval(paths.data, task_cfg.name)
        log(f"evaluating {run.name} on {task_cfg.name} ({len(rows)} items)")
        task = tasks.get(task_cfg.name)
        batch = cfg.eval.batch_size if task.kind == "loglikelihood" else cfg.eval.generation_batch_size
        with resources.measure() as phase:
            result = run_task(model, tokenizer, task, rows, batch, task_cfg.max_new_tokens, log)
        predictions[task_cfg.name] = result.pop("items")
        record["tasks"][task_cfg.name] = {
            **result,
            "batch_size": batch,
            "peak": phase.peak,
            "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        }
    latency = cfg.eval.latency_task
    if any(t.name == latency for t in cfg.tasks):
        rows = load_eval(paths.data, latency)[: cfg.eval.latency_items]
        log(f"timing {len(rows)} {latency} items one at a time")
        max_new = cfg.task(latency).max_new_tokens
        with resources.measure() as phase:
            record["latency"] = measure_latency(model, tokenizer, tasks.get(latency), rows, max_new)
        record["latency"]["peak"] = phase.peak
    return predictions
