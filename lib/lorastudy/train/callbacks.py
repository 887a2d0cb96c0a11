"""What lorastudy adds to the Trainer's loop, as Trainer callbacks: a progress line every tenth of
the run, a stop on a non-finite loss, the last step always logged and validated, and each
checkpoint marked whole once the Trainer has written it (with what it cost). The loss curve
itself is the Trainer's log history, which a checkpoint carries, so a resumed run's curve holds
the steps before its checkpoint too."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from ..resources import folder_bytes
from . import checkpoints

LOSS_COLUMNS = ["step", "epoch", "loss", "learning_rate", "grad_norm", "validation_loss"]


class NonFiniteLossError(RuntimeError):
    pass


def progress_callback(log: Callable[[str], None], total_steps: int, validating: bool):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            # The last step is always logged (and validated), so a curve ends where training ended.
            if state.global_step == state.max_steps:
                control.should_log = True
                control.should_evaluate = validating

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "eval_loss" in logs:
                log(f"  step {state.global_step}/{total_steps}  validation loss {float(logs['eval_loss']):.4f}")
            if not logs or "loss" not in logs:
                return
            loss = float(logs["loss"])
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"training loss became {loss} at step {state.global_step}: lower train.learning_rate "
                    f"(now {args.learning_rate}) or train.max_grad_norm, or use train.precision: fp32"
                )
            every = max(1, total_steps // 10)
            if state.global_step % every == 0 or state.global_step == total_steps:
                log(f"  step {state.global_step}/{total_steps}  loss {loss:.4f}")

    return Progress()


def checkpoint_callback(identity: str, elapsed_before: float, costs: dict):
    """Marks each checkpoint whole (checkpoints.mark_complete) with the training time up to it, and
    adds each one's seconds and bytes to `costs`. A save's time runs from the last event before it
    (the step's end, its log line or its validation) to the Trainer's on_save, which follows it."""
    from transformers import TrainerCallback

    costs.update(saved=0, save_s=[], bytes=[])

    class Checkpoints(TrainerCallback):
        def __init__(self):
            self.began = self.last = time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.last = time.perf_counter()

        def on_log(self, args, state, control, **kwargs):
            self.last = time.perf_counter()

        def on_evaluate(self, args, state, control, **kwargs):
            self.last = time.perf_counter()

        def on_save(self, args, state, control, **kwargs):
            now = time.perf_counter()
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            checkpoints.mark_complete(path, identity, state.global_step, elapsed_before + now - self.began)
            costs["saved"] += 1
            costs["save_s"].append(now - self.last)
            costs["bytes"].append(folder_bytes(path))
            self.last = time.perf_counter()

    return Checkpoints()


def loss_rows(log_history: list[dict]) -> list[dict]:
    """One row per logged step from the Trainer's log history: the training loss and, at the steps
    where it was measured, the validation loss beside it."""
    rows: dict[int, dict] = {}
    for entry in log_history:
        if "loss" not in entry and "eval_loss" not in entry:
            continue  # the closing summary (train_runtime, ...)
        step = int(entry["step"])
        row = rows.setdefault(step, {c: None for c in LOSS_COLUMNS} | {"step": step})
        row["epoch"] = round(float(entry.get("epoch") or 0.0), 4)
        if "loss" in entry:
            row.update(loss=float(entry["loss"]), learning_rate=entry.get("learning_rate"))
            row["grad_norm"] = entry.get("grad_norm")
        if "eval_loss" in entry:
            row["validation_loss"] = float(entry["eval_loss"])
    return [rows[s] for s in sorted(rows)]
