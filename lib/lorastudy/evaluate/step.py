"""Evaluation of one run on the study's tasks, as each task's declaration says: log-likelihood
tasks (ARC, as lm-evaluation-harness scores arc_challenge) by scoring every choice as a
continuation of the context, generation tasks (OpenMath, SQuAD) by batched greedy generation;
then latency at batch size 1 (per item, and TTFT and TPOT at a fixed length) and throughput.

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

from .. import methods, resources, tasks
from ..data.datasets import load_eval, run_settings
from ..models.loading import load_model, load_tokenizer
from ..models.source import model_path
from ..study.paths import StudyPaths
from ..study.runs import trained_run
from ..study.schema import ModelConfig, QuantConfig, Run, StudyConfig, params_hash
from ..tasks import REFERENCE_KEY, Task
from ..util.files import atomic_write_json, write_jsonl
from .generation import generate
from .harness import harness_items
from .latency import measure_latency
from .loglikelihood import score_choices
from .replies import reference_scores


def load_for_eval(path: str, model_cfg: ModelConfig, quant: QuantConfig | None, adapter: Path | None):
    model = load_model(path, model_cfg, quant)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.eval()
    return model


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
    items = task_items(model, tokenizer, task, rows, batch_size, max_new_tokens, progress)
    resources.synchronize()
    wall_s = time.perf_counter() - start
    metrics = {m.name: m.aggregate(items) for m in task.metrics}
    metrics = {name: value for name, value in metrics.items() if value is not None}
    return {"metrics": metrics, "n": len(items), "wall_s": wall_s, "items_per_s": len(items) / wall_s, "items": items}


def task_items(model, tokenizer, task: Task, rows: list[dict], batch_size: int, max_new_tokens, progress) -> list[dict]:
    """Each item's prediction and scores, as the task's declaration says: by lm-evaluation-harness
    (an lm-eval task), by the choices' log-likelihoods, by a generated output, and (a task with a
    reference reply) by that reply's negative log-likelihood per token."""
    if task.harness is not None:
        return harness_items(model, tokenizer, task, rows, batch_size, progress)
    if task.kind == "loglikelihood":
        return score_choices(model, tokenizer, task, rows, batch_size, progress)
    if task.kind == "generate":
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
    else:
        items = [
            {
                "id": r["id"],
                "question": task.question(r),
                "prompt": task.prompt(tokenizer, r),
                "output": "",
                "extracted": None,
                "references": [task.reference(r)],
                "scores": {},
            }
            for r in rows
        ]
    if task.reference is not None:
        scored = reference_scores(
            model, tokenizer, task, rows, batch_size, progress if task.kind == "reference" else _quiet
        )
        for item, extra in zip(items, scored):
            item["scores"][REFERENCE_KEY] = extra.pop(REFERENCE_KEY)
            item.update(extra)
    return items


def _quiet(n: int) -> None:
    return None


def _progress_log(name: str, total: int, log: Callable[[str], None]) -> Callable[[int], None]:
    """A progress callback that logs about every quarter of the items."""
    done, every = {"n": 0}, max(1, total // 4)

    def progress(n: int) -> None:
        before, done["n"] = done["n"], done["n"] + n
        if done["n"] // every > before // every or done["n"] == total:
            log(f"  {name}: {done['n']}/{total} items")

    return progress


def evaluate(cfg: StudyConfig, run: Run, paths: StudyPaths, log: Callable[[str], None] = print) -> dict:
    """Evaluate one run on every task; write predictions/<run>/<task>.jsonl and eval/<run>.json."""
    from transformers import set_seed

    set_seed(run.seed)
    method = methods.get(run.method, cfg)
    settings = run_settings(cfg, method, paths.data)  # the run's: the method's overrides applied
    path = model_path(settings.model, paths.models, settings.resolve, log)
    tokenizer = load_tokenizer(path, settings.model)
    base, model_cfg, adapter = trained_weights(cfg, settings, run, paths, path)
    with resources.measure() as load:
        model = load_for_eval(base, model_cfg, method.quant(settings), adapter)
    record = _model_record(cfg, settings, run, base, adapter, model)
    record["load"] = {"wall_s": load.wall_s, "peak": load.peak}
    start = time.perf_counter()
    predictions = _evaluate_tasks(settings, run, paths, model, tokenizer, record, log)
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
        f"{t} {tasks.get(t, cfg).primary} {r['metrics'].get(tasks.get(t, cfg).primary, float('nan')):.3f}"
        for t, r in record["tasks"].items()
    )
    log(f"evaluated {run.name} in {wall_s:.1f} s: {summary}")
    return record


def trained_weights(
    cfg: StudyConfig, settings: StudyConfig, run: Run, paths: StudyPaths, path: str
) -> tuple[str, ModelConfig, Path | None]:
    """What `run` evaluates: the base (`path`, or the whole model a full fine-tuning saved) with
    the settings to load it (`settings`: the run's), and the adapter on it, if any: its own
    training's, or for a cross-evaluation that of the run it evaluates (the same seed of another
    method), found in the study `cfg`."""
    trained = trained_run(cfg, run)
    if trained is None:
        return path, settings.model, None
    weights = paths.adapter(trained.name)
    if methods.get(trained.method, cfg).trains_every_weight:
        if not (weights / "config.json").is_file():
            raise FileNotFoundError(f"{weights}: no trained model; run the 02_train step for {trained.name} first")
        # A local folder: the hub revision the base was pinned to does not apply to it.
        return str(weights), dataclasses.replace(settings.model, revision=None), None
    if not (weights / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{weights}: no trained adapter; run the 02_train step for {trained.name} first")
    return path, settings.model, weights


def _model_record(
    cfg: StudyConfig, settings: StudyConfig, run: Run, path: str, adapter: Path | None, model
) -> dict[str, Any]:
    counts = resources.count_parameters(model)
    trained = trained_run(cfg, run)
    adapter_params = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    full = trained is not None and methods.get(trained.method, cfg).trains_every_weight
    return {
        "run": run.name,
        "method": run.method,
        "seed": run.seed,
        "params_hash": params_hash(settings.resolved()),
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
    predictions = {}
    for task_cfg in cfg.tasks:
        rows = load_eval(paths.data, task_cfg.name)
        log(f"evaluating {run.name} on {task_cfg.name} ({len(rows)} items)")
        task = tasks.get(task_cfg.name, cfg)
        batch = cfg.eval.generation_batch_size if task.kind == "generate" else cfg.eval.batch_size
        with resources.measure() as phase:
            result = run_task(model, tokenizer, task, rows, batch, task_cfg.max_new_tokens, log)
        predictions[task_cfg.name] = result.pop("items")
        record["tasks"][task_cfg.name] = {
            "title": task.title,
            **result,
            "batch_size": batch,
            "peak": phase.peak,
            "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        }
    latency = cfg.eval.latency_task
    if any(t.name == latency for t in cfg.tasks):
        rows = load_eval(paths.data, latency)[: cfg.eval.latency_items]
        tokens = cfg.eval.latency_tokens
        log(f"timing {len(rows)} {latency} items one at a time, whole answers and exactly {tokens} tokens each")
        max_new = cfg.task(latency).max_new_tokens
        with resources.measure() as phase:
            record["latency"] = measure_latency(model, tokenizer, tasks.get(latency, cfg), rows, max_new, tokens)
        record["latency"]["peak"] = phase.peak
    return predictions
