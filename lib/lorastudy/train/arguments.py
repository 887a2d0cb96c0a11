"""The Trainer's arguments for a run: the study's settings as TrainingArguments, one place."""

from __future__ import annotations

from typing import Any

import torch

from ..methods.declaration import Method
from ..study.schema import StudyConfig
from . import distributed, tracking
from .precision import resolve_optim, resolve_precision


def training_arguments(cfg: StudyConfig, method: Method, seed: int, output_dir: str, run_name: str | None = None):
    from transformers import TrainingArguments

    precision = resolve_precision(cfg, method)
    batch_size, grad_accum = distributed.per_process_batch(cfg.train)  # the study's own with one process
    t = cfg.train
    return TrainingArguments(
        output_dir=output_dir,
        run_name=run_name,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        # transformers 5 reads a warmup_steps below 1 as a share of the steps.
        warmup_steps=t.warmup_ratio,
        max_grad_norm=t.max_grad_norm,
        weight_decay=t.weight_decay,
        optim=resolve_optim(cfg),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="steps" if t.eval_steps else "no",
        eval_steps=t.eval_steps or None,
        # Only the loss: logits of every validation token would be kept otherwise.
        prediction_loss_only=True,
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or None,
        # The newest and the one before: a kill while the newest is written leaves the other whole.
        save_total_limit=2,
        report_to=tracking.trackers(cfg) or "none",
        disable_tqdm=True,
        seed=seed,
        data_seed=seed,
        remove_unused_columns=False,
        dataloader_pin_memory=False,
        include_num_input_tokens_seen="non_padding",
        **_sampling(t.group_by_length),
        **distributed.trainer_arguments(t),
    )


def _sampling(group_by_length: bool) -> dict[str, Any]:
    """Length-grouped batches: `group_by_length` until transformers 5.x renamed it to a sampling strategy."""
    from transformers import TrainingArguments

    if "train_sampling_strategy" in TrainingArguments.__dataclass_fields__:
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length}
