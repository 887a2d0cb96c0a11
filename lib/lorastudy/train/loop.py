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
from typing import Any

import torch

from .. import methods, resources, tasks
from ..data.datasets import first_label, load_train, run_settings
from ..methods.declaration import Method
from ..models.loading import assistant_turn_end, load_model, load_tokenizer, torch_dtype, upcast_like_kbit_preparation
from ..models.source import model_path
from ..quantization.errors import reconstruction_error
from ..study.paths import StudyPaths
from ..study.schema import Run, StudyConfig, params_hash
from ..tasks import training_ids
from ..util.files import atomic_path, atomic_write_json, scratch_dir
from . import distributed
from .precision import ran_in, resolve_optim, resolve_precision


class NonFiniteLossError(RuntimeError):
    pass


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


def _trainer_callback(losses: list[dict], log: Callable[[str], None], total_steps: int):
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            # The last step is always logged, so a curve ends where training ended.
            if state.global_step == state.max_steps:
                control.should_log = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            loss = float(logs["loss"])
            losses.append(
                {
                    "step": state.global_step,
                    "epoch": round(state.epoch or 0.0, 4),
                    "loss": loss,
                    "learning_rate": logs.get("learning_rate"),
                    "grad_norm": logs.get("grad_norm"),
                }
            )
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"training loss became {loss} at step {state.global_step}: lower train.learning_rate "
                    f"(now {args.learning_rate}) or train.max_grad_norm, or use train.precision: fp32"
                )
            every = max(1, total_steps // 10)
            if state.global_step % every == 0 or state.global_step == total_steps:
                log(f"  step {state.global_step}/{total_steps}  loss {loss:.4f}")

    return LossLog()


def train(cfg: StudyConfig, run: Run, paths: StudyPaths, log: Callable[[str], None] = print) -> dict:
    """Train one run as its method declares; write adapters/<run>/ (the adapter, or the whole model
    for full fine-tuning), train/<run>.json and train/<run>.loss.csv."""
    from transformers import set_seed

    method = methods.get(run.method, cfg)
    if not method.trains:
        raise ValueError(f"method {run.method!r} trains nothing (it is evaluated as loaded)")
    if distributed.should_launch(method.settings(cfg).train):
        return distributed.launch(cfg, run, paths, log)  # each launched process comes back here
    # The run's settings from here on (the method's overrides applied); the study's own were
    # needed only to find the method, which may be a cell of the study's grid.
    cfg = run_settings(cfg, method, paths.data)
    set_seed(run.seed)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    examples, dropped = build_examples(load_train(paths.data), tokenizer, cfg.data.max_seq_len, cfg=cfg)
    if not examples:
        raise ValueError("data.max_seq_len: every training prompt is longer than it; raise it")
    model, stages = prepare_model(cfg, method, path)
    counts = _check_size(method, resources.count_parameters(model))
    steps_per_epoch = math.ceil(len(examples) / (cfg.train.batch_size * cfg.train.grad_accum))
    total_steps = cfg.train.max_steps if cfg.train.max_steps > 0 else math.ceil(steps_per_epoch * cfg.train.epochs)
    log(
        f"training {run.name}: {len(examples)} examples, {total_steps} optimizer steps, "
        f"{counts['trainable_params']:,} trainable of {counts['total_params']:,} parameters"
    )
    fit = distributed.combine(_fit(cfg, method, run, model, tokenizer, examples, total_steps, log))
    adapter_state = fit.pop("adapter_state")
    if not distributed.is_main_process():
        return fit  # the first process writes the run's files
    model.config.use_cache = True  # as the base had it: a fully fine-tuned model is saved whole
    with atomic_path(paths.adapter(run.name)) as tmp:
        # An adapter's weights, or (full fine-tuning) the whole model, which evaluation loads as its base.
        model.save_pretrained(tmp, safe_serialization=True, state_dict=adapter_state)
    _write_losses(paths.loss_csv(run.name), fit["losses"])
    record = {
        "run": run.name,
        "method": run.method,
        "seed": run.seed,
        "params_hash": params_hash(cfg.resolved()),
        "model": path,
        "device": resources.device_name(),
        "train_examples": len(examples),
        "dropped_examples": dropped,
        **counts,
        "pct_trainable": 100.0 * counts["trainable_params"] / counts["total_params"],
        "adapter_bytes": resources.folder_bytes(paths.adapter(run.name)),
        "stages": stages,
        **{k: v for k, v in fit.items() if k != "losses"},
    }
    atomic_write_json(paths.train_json(run.name), record)
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


def training_arguments(cfg: StudyConfig, method: Method, seed: int, output_dir: str):
    from transformers import TrainingArguments

    precision = resolve_precision(cfg, method)
    batch_size, grad_accum = distributed.per_process_batch(cfg.train)  # the study's own with one process
    return TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=cfg.train.learning_rate,
        lr_scheduler_type=cfg.train.lr_scheduler,
        # transformers 5 reads a warmup_steps below 1 as a share of the steps.
        warmup_steps=cfg.train.warmup_ratio,
        max_grad_norm=cfg.train.max_grad_norm,
        weight_decay=cfg.train.weight_decay,
        optim=resolve_optim(cfg),
        num_train_epochs=cfg.train.epochs,
        max_steps=cfg.train.max_steps,
        logging_steps=cfg.train.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        include_num_input_tokens_seen="non_padding",
        **distributed.trainer_arguments(cfg.train),
    )


def _fit(cfg: StudyConfig, method: Method, run: Run, model, tokenizer, examples: list[dict], total_steps: int, log):
    """Run the Trainer, measuring time and peak memory; the figures for the training record.
    `cfg` is the run's settings (the method's overrides applied)."""
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer

    scratch = scratch_dir("lorastudy-train-")
    losses: list[dict] = []
    trainer = Trainer(
        model=model,
        args=training_arguments(cfg, method, run.seed, str(scratch)),
        train_dataset=examples,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        callbacks=[_trainer_callback(losses, log, total_steps)],
    )
    trainer.remove_callback(PrinterCallback)  # our callback logs a line every tenth of the run
    try:
        with resources.measure() as phase:
            start = time.perf_counter()
            result = trainer.train()
            wall_s = time.perf_counter() - start
        adapter_state = distributed.full_state_dict(trainer)
    except torch.OutOfMemoryError as exc:
        raise OutOfMemoryAdvice(f"out of memory while training {run.name}: {memory_advice(cfg)}") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    tokens_seen = int(trainer.state.num_input_tokens_seen)
    return {
        "losses": losses,
        "precision": resolve_precision(cfg, method),
        "compute_precision": ran_in(cfg, method),
        "optim": resolve_optim(cfg),
        "train_peak": phase.peak,
        "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        "memory_kind": phase.peak["memory_kind"],
        "wall_s": wall_s,
        "optimizer_steps": int(result.global_step),
        "tokens_seen": tokens_seen,
        "tokens_per_s": tokens_seen / wall_s if wall_s > 0 else None,
        "final_loss": losses[-1]["loss"] if losses else None,
        "train_loss": float(result.training_loss),
        "adapter_state": adapter_state,
    }


def _write_losses(path, losses: list[dict]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "epoch", "loss", "learning_rate", "grad_norm"])
        writer.writeheader()
        writer.writerows(losses)
