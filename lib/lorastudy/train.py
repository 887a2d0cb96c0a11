"""One training path for both methods: LoRA on the 16-bit base, or the same LoRA on an NF4
4-bit base (QLoRA, as torchtune's quantize_base flag does). transformers' Trainer runs the
loop; lorastudy adds what it lacks: answer-only labels, the loss log, a stop on a
non-finite loss, and the resource measurements.
"""

from __future__ import annotations

import csv
import math
import shutil
import time
from collections.abc import Callable
from typing import Any

import torch

from . import resources
from .config import StudyConfig, params_hash
from .data import load_train
from .io import StudyPaths, atomic_path, atomic_write_json, scratch_dir
from .models import DTYPES, assistant_turn_end, load_model, load_tokenizer, model_path
from .quantization import reconstruction_error
from .tasks import openmath_user_message


class NonFiniteLossError(RuntimeError):
    pass


class OutOfMemoryAdvice(RuntimeError):
    pass


def chat_prompt(tokenizer, user_message: str) -> str:
    """The generation prompt of the model's chat template. Thinking is disabled where the
    template has the switch (Qwen3); other templates (SmolLM2's) are rendered as they are."""
    options = {"enable_thinking": False} if "enable_thinking" in (tokenizer.chat_template or "") else {}
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True, **options
    )


def build_examples(rows: list[dict], tokenizer, max_seq_len: int) -> tuple[list[dict], int]:
    """Tokenised examples whose labels mask the prompt, so the loss is on the answer only; each
    answer ends with the token that closes an assistant's turn in the model's chat template,
    so the fine-tuned model learns to stop. Returns the examples and how many rows were
    dropped because the prompt alone is too long."""
    examples, dropped = [], 0
    turn_end = assistant_turn_end(tokenizer)
    for row in rows:
        prompt_ids = tokenizer(
            chat_prompt(tokenizer, openmath_user_message(row["problem"])), add_special_tokens=False
        ).input_ids
        answer_ids = tokenizer(row["generated_solution"] + turn_end, add_special_tokens=False).input_ids
        if len(prompt_ids) >= max_seq_len - 1:
            dropped += 1
            continue
        input_ids = (prompt_ids + answer_ids)[:max_seq_len]
        labels = ([-100] * len(prompt_ids) + answer_ids)[:max_seq_len]
        examples.append({"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels})
    return examples, dropped


def resolve_precision(cfg: StudyConfig) -> str:
    if cfg.train.precision != "auto":
        return cfg.train.precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def resolve_optim(cfg: StudyConfig) -> str:
    if cfg.train.optim != "auto":
        return cfg.train.optim
    return "paged_adamw_32bit" if torch.cuda.is_available() else "adamw_torch"


def prepare_model(cfg: StudyConfig, method: str, path: str) -> tuple[Any, dict]:
    """Load the base for `method`, apply k-bit preparation and LoRA; measure each stage."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    quantized = method == "qlora"
    stages: dict[str, Any] = {}
    with resources.measure() as load:
        model = load_model(path, cfg.model, cfg.quant if quantized else None)
    stages["load"] = {
        "weights_bytes": resources.weights_bytes(model),
        **resources.current_bytes(),
        "peak": load.peak,
        "wall_s": load.wall_s,
    }
    stages["quantized"] = resources.quantized_weights(model)
    if quantized:
        # What QLoRA's base loses against LoRA's: NF4's error on these very weights.
        stages["quantized"]["reconstruction"] = reconstruction_error(model, path, DTYPES[cfg.model.dtype])
    gradient_checkpointing = cfg.train.gradient_checkpointing
    if quantized and cfg.quant.prepare_kbit:
        with resources.measure() as prep:
            model = prepare_model_for_kbit_training(
                model,
                use_gradient_checkpointing=gradient_checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        stages["prepare"] = {
            "weights_bytes": resources.weights_bytes(model),
            **resources.current_bytes(),
            "peak": prep.peak,
            "wall_s": prep.wall_s,
        }
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        # Frozen embeddings give checkpointed blocks inputs without grad; LoRA needs them.
        model.enable_input_require_grads()
    model.config.use_cache = False
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
        bias="none",
    )
    model = get_peft_model(model, lora)
    stages["adapters"] = {"weights_bytes": resources.weights_bytes(model), **resources.current_bytes()}
    return model, stages


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


def train(
    cfg: StudyConfig, method: str, seed: int, run: str, paths: StudyPaths, log: Callable[[str], None] = print
) -> dict:
    """Train one adapter; write adapters/<run>/, train/<run>.json and train/<run>.loss.csv."""
    from transformers import DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainingArguments, set_seed

    if method not in ("lora", "qlora"):
        raise ValueError(f"method {method!r} is not trained (expected lora or qlora)")
    set_seed(seed)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    examples, dropped = build_examples(load_train(paths.data), tokenizer, cfg.data.max_seq_len)
    if not examples:
        raise ValueError("data.max_seq_len: every training prompt is longer than it; raise it")
    model, stages = prepare_model(cfg, method, path)
    counts = resources.count_parameters(model)

    precision, optim = resolve_precision(cfg), resolve_optim(cfg)
    steps_per_epoch = math.ceil(len(examples) / (cfg.train.batch_size * cfg.train.grad_accum))
    total_steps = cfg.train.max_steps if cfg.train.max_steps > 0 else math.ceil(steps_per_epoch * cfg.train.epochs)
    scratch = scratch_dir("lorastudy-train-")
    args = TrainingArguments(
        output_dir=str(scratch),
        per_device_train_batch_size=cfg.train.batch_size,
        gradient_accumulation_steps=cfg.train.grad_accum,
        learning_rate=cfg.train.learning_rate,
        lr_scheduler_type=cfg.train.lr_scheduler,
        warmup_steps=cfg.train.warmup_ratio,
        max_grad_norm=cfg.train.max_grad_norm,
        weight_decay=cfg.train.weight_decay,
        optim=optim,
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
    )
    losses: list[dict] = []
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=examples,
        data_collator=collator,
        callbacks=[_trainer_callback(losses, log, total_steps)],
    )
    trainer.remove_callback(PrinterCallback)  # our callback logs a line every tenth of the run
    log(
        f"training {run}: {len(examples)} examples, {total_steps} optimizer steps, "
        f"{counts['trainable_params']:,} trainable of {counts['total_params']:,} parameters"
    )
    try:
        with resources.measure() as phase:
            start = time.perf_counter()
            result = trainer.train()
            wall_s = time.perf_counter() - start
    except torch.OutOfMemoryError as exc:
        raise OutOfMemoryAdvice(
            f"out of memory while training {run}: lower train.batch_size (now {cfg.train.batch_size}) "
            f"and raise train.grad_accum, lower data.max_seq_len (now {cfg.data.max_seq_len}), "
            f"or set train.gradient_checkpointing: true"
        ) from exc
    tokens_seen = int(trainer.state.num_input_tokens_seen)

    with atomic_path(paths.adapter(run)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
    with atomic_path(paths.loss_csv(run)) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "epoch", "loss", "learning_rate", "grad_norm"])
        writer.writeheader()
        writer.writerows(losses)
    record = {
        "run": run,
        "method": method,
        "seed": seed,
        "params_hash": params_hash(cfg.to_dict()),
        "model": path,
        "device": resources.device_name(),
        "precision": precision,
        "optim": optim,
        "train_examples": len(examples),
        "dropped_examples": dropped,
        **counts,
        "pct_trainable": 100.0 * counts["trainable_params"] / counts["total_params"],
        "adapter_bytes": resources.folder_bytes(paths.adapter(run)),
        "stages": stages,
        "train_peak": phase.peak,
        "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        "memory_kind": phase.peak["memory_kind"],
        "wall_s": wall_s,
        "optimizer_steps": int(result.global_step),
        "tokens_seen": tokens_seen,
        "tokens_per_s": tokens_seen / wall_s if wall_s > 0 else None,
        "final_loss": losses[-1]["loss"] if losses else None,
        "train_loss": float(result.training_loss),
    }
    atomic_write_json(paths.train_json(run), record)
    shutil.rmtree(scratch, ignore_errors=True)
    log(
        f"trained {run} in {wall_s:.1f} s: {tokens_seen:,} tokens, peak {record['peak_memory_mb']} MB "
        f"({record['memory_kind']}), final loss {record['final_loss']:.4f}"
    )
    return record
