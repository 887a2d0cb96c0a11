"""One training path for every method: what its declaration trains (a LoRA or DoRA adapter, or
every weight) on the base it loads (LoRA on the 16-bit base; QLoRA the same LoRA on an NF4
4-bit base, as torchtune's quantize_base flag does; others on FP4 or 8-bit bases).
transformers' Trainer runs the loop; lorastudy adds what it lacks: answer-only labels, the
loss log, a stop on a non-finite loss, and the resource measurements.
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .. import methods, resources, tasks
from ..data.datasets import load_train, load_validation, run_settings
from ..data.lengths import first_label
from ..methods.declaration import Method
from ..models.loading import assistant_turn_end, load_model, load_tokenizer, torch_dtype, upcast_like_kbit_preparation
from ..models.source import model_path
from ..quantization.errors import reconstruction_error
from ..study.paths import StudyPaths
from ..study.schema import Run, StudyConfig, identity_settings, params_hash
from ..tasks import training_ids
from ..util.files import atomic_path, atomic_write_json, sha256_file
from . import checkpoints, distributed, tracking
from .arguments import training_arguments
from .callbacks import LOSS_COLUMNS, checkpoint_callback, loss_rows, progress_callback
from .precision import ran_in, resolve_optim, resolve_precision


class OutOfMemoryAdvice(RuntimeError):
    pass


def memory_advice(cfg: StudyConfig) -> str:
    """What to change after running out of memory: only settings that are not already at their
    memory-saving value."""
    t = cfg.train
    advice = []
    if t.batch_size > 1:
        advice.append(f"lower train.batch_size (now {t.batch_size}) and raise train.grad_accum (now {t.grad_accum})")
    if cfg.data.max_seq_len > 256:
        advice.append(
            f"lower data.max_seq_len (now {cfg.data.max_seq_len}; the data step reports how many examples it cuts)"
        )
    if not t.gradient_checkpointing:
        advice.append("set train.gradient_checkpointing: true")
    if t.optim in ("auto", "paged_adamw_32bit", "adamw_torch"):
        advice.append(f"use train.optim: paged_adamw_8bit (now {t.optim})")
    if not advice:
        return "every memory-saving setting is already on; use a device with more memory or a smaller model"
    return "; or ".join(advice)


def build_examples(
    rows: list[dict], tokenizer, max_seq_len: int, task: str = "openmath", cfg: StudyConfig | None = None
) -> tuple[list[dict], int]:
    """Tokenised examples (the task's declaration says how a row becomes a user message and an
    answer, or a conversation) whose labels mask the prompt, so the loss is on the answers only;
    each answer ends with the token that closes an assistant's turn in the model's chat template,
    so the fine-tuned model learns to stop. Returns the examples and how many rows were dropped
    because the prompt alone is too long. With the study's `cfg`, the task is its training task
    (which may be one its params declare)."""
    declared = tasks.get(cfg.data.train_task if cfg is not None else task, cfg)
    turn_end = assistant_turn_end(tokenizer)
    examples, dropped = [], 0
    for row in rows:
        ids, labels = training_ids(tokenizer, declared, row, turn_end)
        if first_label(labels) >= max_seq_len - 1:
            dropped += 1
            continue
        input_ids, labels = ids[:max_seq_len], labels[:max_seq_len]
        examples.append({"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels})
    return examples, dropped


def prepare_model(cfg: StudyConfig, method: Method, path: str) -> tuple[Any, dict]:
    """Load the base as `method` declares, prepare it (k-bit preparation, or the same upcasts on a
    16-bit base) and add what it trains (a LoRA or DoRA adapter, or every weight); measure each stage."""
    cfg = method.settings(cfg)
    stages: dict[str, Any] = {}
    with resources.measure() as load:
        model = load_model(path, cfg.model, method.quant(cfg), sharded=distributed.sharded(cfg.train))
    stages["load"] = _stage(model, load)
    stages["quantized"] = resources.quantized_weights(model)
    if method.quant(cfg) is not None:
        # What the quantized base loses against the 16-bit one: the error on these very weights.
        stages["quantized"]["reconstruction"] = reconstruction_error(model, path, torch_dtype(cfg.model.dtype))
    with resources.measure() as prep:
        fp32_params = _prepare(cfg, method, model)
    if fp32_params is not None:
        stages["prepare"] = {**_stage(model, prep), "fp32_params": fp32_params}
    model.config.use_cache = False
    _keep_4bit_layout(model)
    model = _add_trained(cfg, method, model)
    stages["adapters"] = {"weights_bytes": resources.weights_bytes(model), **resources.current_bytes()}
    return model, stages


def _stage(model, phase: resources.Phase) -> dict:
    return {
        "weights_bytes": resources.weights_bytes(model),
        **resources.current_bytes(),
        "peak": phase.peak,
        "wall_s": phase.wall_s,
    }


def _prepare(cfg: StudyConfig, method: Method, model) -> int | None:
    """k-bit preparation for a quantized base that asks for it, the same fp32 upcasts for a
    16-bit base that declares them, gradient checkpointing where asked. Returns how many
    parameters are in fp32 after a preparation (None: no preparation ran)."""
    from peft import prepare_model_for_kbit_training

    checkpointing = cfg.train.gradient_checkpointing
    if method.prepares_kbit(cfg):
        prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
        return _fp32_params(model)
    if method.upcast:
        upcast_like_kbit_preparation(model)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # Frozen embeddings give checkpointed blocks inputs without grad; an adapter needs them.
        if not method.trains_every_weight:
            model.enable_input_require_grads()
    return _fp32_params(model) if method.upcast else None


def _keep_4bit_layout(model) -> None:
    """On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit layer's weights for its inference kernel
    at the first forward pass without gradients (a validation) and unpacks them when a state dict is
    taken (a checkpoint), and the round trip does not give the same quantization constants back:
    validating or checkpointing would change what QLoRA trains on. Training keeps its layout."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _fp32_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.dtype == torch.float32)


def _add_trained(cfg: StudyConfig, method: Method, model):
    """What the method trains: every weight of the base, or a LoRA adapter (DoRA's: peft's
    use_dora, a learned magnitude per output feature beside the low-rank update)."""
    from peft import LoraConfig, get_peft_model

    if method.trains_every_weight:
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
        use_dora=method.decomposes_weights,
    )
    return get_peft_model(model, lora)


def train(
    cfg: StudyConfig,
    run: Run,
    paths: StudyPaths,
    log: Callable[[str], None] = print,
    step: str = "",
    identity: str = "",
) -> dict:
    """Train one run as its method declares; write adapters/<run>/ (the adapter, or the whole model
    for full fine-tuning), train/<run>.json and train/<run>.loss.csv. `step` and `identity` are the
    pipeline's name and identity of the training step: a checkpoint of that identity is resumed
    (run by hand, the identity is a hash of the run's settings and data)."""
    from transformers import set_seed

    method = methods.get(run.method, cfg)
    if not method.trains:
        raise ValueError(f"method {run.method!r} trains nothing (it is evaluated as loaded)")
    if distributed.should_launch(method.settings(cfg).train):
        return distributed.launch(cfg, run, paths, log, step, identity)  # each launched process comes back here
    # The run's settings from here on (the method's overrides applied); the study's own were
    # needed only to find the method, which may be a cell of the study's grid.
    cfg = run_settings(cfg, method, paths.data)
    set_seed(run.seed)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    examples, dropped = build_examples(load_train(paths.data), tokenizer, cfg.data.max_seq_len, cfg=cfg)
    if not examples:
        raise ValueError("data.max_seq_len: every training prompt is longer than it; raise it")
    validation = build_examples(load_validation(paths.data), tokenizer, cfg.data.max_seq_len, cfg=cfg)[0]
    model, stages = prepare_model(cfg, method, path)
    counts = _check_size(method, resources.count_parameters(model))
    steps_per_epoch = math.ceil(len(examples) / (cfg.train.batch_size * cfg.train.grad_accum))
    total_steps = cfg.train.max_steps if cfg.train.max_steps > 0 else math.ceil(steps_per_epoch * cfg.train.epochs)
    log(
        f"training {run.name}: {len(examples)} examples, {total_steps} optimizer steps, "
        f"{counts['trainable_params']:,} trainable of {counts['total_params']:,} parameters"
        + (f", validation loss on {len(validation)} held-out examples" if cfg.train.eval_steps else "")
    )
    data = Data(examples, validation if cfg.train.eval_steps else [], tokenizer)
    job = Job(step or run.name, identity or fallback_identity(cfg, run, paths), paths.checkpoints(run.name))
    fit = distributed.combine(_fit(cfg, method, run, model, data, total_steps, job, paths, log))
    adapter_state = fit.pop("adapter_state")
    if not distributed.is_main_process():
        return fit  # the first process writes the run's files
    record = _write_run(cfg, run, paths, model, fit, adapter_state, path, len(examples), len(data.validation), dropped)
    record["stages"] = stages
    atomic_write_json(paths.train_json(run.name), record)
    checkpoints.finish(job.folder, keep=cfg.train.keep_checkpoints)
    log(
        f"trained {run.name} in {record['wall_s']:.1f} s: {record['tokens_seen']:,} tokens, peak "
        f"{record['peak_memory_mb']} MB ({record['memory_kind']}), final loss {record['final_loss']:.4f}"
    )
    return record


def _check_size(method: Method, counts: dict) -> dict:
    """The model's parameter counts, once they are within what the method is offered for."""
    if method.max_params is not None and counts["total_params"] > method.max_params:
        raise ValueError(
            f"method {method.name}: the model has {counts['total_params']:,} parameters, more than the "
            f"{method.max_params:,} this method is offered for"
        )
    return counts


def _write_run(cfg, run: Run, paths: StudyPaths, model, fit, adapter_state, path, n_train, n_validation, dropped):
    """Save the adapter (or the whole model) and the loss log; the training record, not yet written."""
    counts = resources.count_parameters(model)
    model.config.use_cache = True  # as the base had it: a fully fine-tuned model is saved whole
    with atomic_path(paths.adapter(run.name)) as tmp:
        # An adapter's weights, or (full fine-tuning) the whole model, which evaluation loads as its base.
        model.save_pretrained(tmp, safe_serialization=True, state_dict=adapter_state)
    _write_losses(paths.loss_csv(run.name), fit["losses"])
    return {
        "run": run.name,
        "method": run.method,
        "seed": run.seed,
        "params_hash": params_hash(cfg.resolved()),
        "model": path,
        "device": resources.device_name(),
        "train_examples": n_train,
        "validation_examples": n_validation,
        "dropped_examples": dropped,
        **counts,
        "pct_trainable": 100.0 * counts["trainable_params"] / counts["total_params"],
        "adapter_bytes": resources.folder_bytes(paths.adapter(run.name)),
        **{k: v for k, v in fit.items() if k != "losses"},
    }


@dataclass(frozen=True)
class Data:
    examples: list[dict]
    validation: list[dict]  # empty: no validation loss is measured
    tokenizer: Any


@dataclass(frozen=True)
class Job:
    step: str  # how the log names the training step
    identity: str  # the only identity whose checkpoints it resumes
    folder: Path  # the step's folder, where the Trainer writes its checkpoints


def fallback_identity(cfg: StudyConfig, run: Run, paths: StudyPaths) -> str:
    """A training's identity outside the pipeline: its settings (those that change what it writes)
    and the SHA-256 of its data files."""
    files = [paths.data / "train.jsonl", paths.data / "validation.jsonl"]
    settings = {**cfg.resolved(), "train": identity_settings(cfg.to_dict()["train"])}
    data = {f.name: sha256_file(f) for f in files if f.is_file()}
    return params_hash({"settings": settings, "run": [run.method, run.seed], "data": data})


def _fit(cfg: StudyConfig, method: Method, run: Run, model, data: Data, total_steps: int, job: Job, paths, log):
    """Run the Trainer (from the step's last complete checkpoint of its identity, if any), measuring
    time and peak memory; the figures for the training record. `cfg` is the run's settings."""
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer

    resume = checkpoints.find_resumable(job.folder, job.identity)
    for removed in resume.removed:
        log(f"  removed checkpoint {removed} of {job.step}: not resumed")
    if resume.checkpoint is not None:
        log(f"resuming {job.step} from {resume.checkpoint.name}")
    elif not cfg.train.save_steps:
        shutil.rmtree(job.folder, ignore_errors=True)
    costs: dict = {}
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, method, run.seed, str(job.folder), tracking.tracked_name(run)),
        train_dataset=data.examples,
        eval_dataset=data.validation or None,
        data_collator=DataCollatorForSeq2Seq(data.tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[
            progress_callback(log, total_steps, bool(data.validation)),
            checkpoint_callback(job.identity, resume.elapsed_s, costs),
        ],
    )
    trainer.remove_callback(PrinterCallback)  # our callback logs a line every tenth of the run
    trainer.add_callback(tracking.study_params_callback(cfg, trainer))
    tracking.configure(trainer, cfg, run, paths, resuming=resume.checkpoint is not None)
    try:
        with tracking.mlflow_run(cfg, run, paths, job.folder, resume.checkpoint is not None):
            with resources.measure() as phase:
                start = time.perf_counter()
                result = trainer.train(resume_from_checkpoint=str(resume.checkpoint) if resume.checkpoint else None)
                wall_s = time.perf_counter() - start
        adapter_state = distributed.full_state_dict(trainer)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemoryAdvice(f"out of memory while training {run.name}: {memory_advice(cfg)}") from exc
    # On any failure or interruption the step's folder stays: the next run resumes from it.
    return _fit_figures(cfg, method, trainer, result, phase, wall_s + resume.elapsed_s, resume, costs, adapter_state)


def _fit_figures(cfg, method, trainer, result, phase, wall_s, resume, costs, adapter_state) -> dict:
    losses = loss_rows(trainer.state.log_history)
    trained = [row for row in losses if row["loss"] is not None]
    validated = [row["validation_loss"] for row in losses if row["validation_loss"] is not None]
    tokens_seen = int(trainer.state.num_input_tokens_seen)
    return {
        "losses": losses,
        "precision": resolve_precision(cfg, method),
        "compute_precision": ran_in(cfg, method),
        "optim": resolve_optim(cfg),
        "train_peak": phase.peak,
        "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        "memory_kind": phase.peak["memory_kind"],
        # A resumed run's time: this attempt's and its checkpoint's, not the work lost after it.
        "wall_s": wall_s,
        "resumed_from": resume.checkpoint.name if resume.checkpoint else None,
        "optimizer_steps": int(result.global_step),
        "tokens_seen": tokens_seen,
        "tokens_per_s": tokens_seen / wall_s if wall_s > 0 else None,
        "final_loss": trained[-1]["loss"] if trained else None,
        "final_validation_loss": validated[-1] if validated else None,
        "validation_s": sum(e.get("eval_runtime", 0.0) for e in trainer.state.log_history),
        "checkpoints": {**costs, "save_steps": cfg.train.save_steps} if cfg.train.save_steps else None,
        "group_by_length": cfg.train.group_by_length,
        "tracking": tracking.trackers(cfg),
        "train_loss": float(result.training_loss),
        "adapter_state": adapter_state,
    }


def _write_losses(path, losses: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOSS_COLUMNS)
        writer.writeheader()
        writer.writerows(losses)
