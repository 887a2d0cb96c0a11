"""One training run over several processes (`train.processes` > 1).

The training step launches itself with `accelerate launch`: it starts N processes (torchrun),
and each runs the same `train.train` in this module's `main`. With `train.distributed: ddp`
each process holds a whole copy of the model (one GPU each, NCCL; on a machine without CUDA,
CPU processes with the gloo backend) and DDP averages their gradients. The processes share
the global batch (`per_process_batch`), so the run trains on the same batches, in the same
order, as one process with the same `batch_size` and `grad_accum` would. Process 0 writes
the adapter, the loss log and the training record; the record holds each process's peak
memory and their total, and tokens per second over all processes.

`train.distributed: fsdp` shards the model across the GPUs instead (CUDA only). QLoRA under
FSDP needs what peft's and bitsandbytes' FSDP-QLoRA guides give:
- 4-bit weights packed in a float dtype that FSDP can flatten and shard, the same as the rest of
  the model's: `quant.storage` equal to `model.dtype` (bnb_4bit_quant_storage; study/validate.py checks);
- `use_orig_params: false`, with the trainable adapter and the frozen base wrapped in separate
  FSDP units (transformers' Trainer applies peft's wrap policy when it sees a peft model);
- transformer-block auto-wrapping, and module states synchronised from process 0, which alone
  loads the weights (on the CPU, with no device map: accelerate's CPU-RAM-efficient loading), so
  no GPU ever holds the whole model;
- no k-bit preparation: its fp32 upcasts beside the 4-bit weights would give a wrapped unit two
  dtypes (study/validate.py refuses the combination, as TRL skips the preparation for sharded QLoRA);
- the adapter saved from a full state dict that every process takes part in gathering.
FSDP cannot run on the machines lorastudy is tested on (no GPU): only DDP is exercised there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from .. import methods
from ..resources.memory import MB, headline_peak_bytes, largest_peak
from ..study.paths import StudyPaths
from ..study.schema import StudyConfig, TrainConfig
from ..util.files import atomic_write_json, read_json, scratch_dir
from .precision import resolve_precision

# Set in the processes that `accelerate launch` starts, so that they train rather than launch again.
LAUNCHED = "LORASTUDY_LAUNCHED"


class DistributedTrainingFailed(RuntimeError):
    pass


def launched() -> bool:
    return os.environ.get(LAUNCHED) == "1"


def should_launch(train: TrainConfig) -> bool:
    return train.processes > 1 and not launched()


def sharded(train: TrainConfig) -> bool:
    """Whether the model is sharded across the processes (FSDP) rather than copied into each."""
    return train.processes > 1 and train.distributed == "fsdp"


def is_main_process() -> bool:
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


def per_process_batch(train: TrainConfig) -> tuple[int, int]:
    """(batch size per process, gradient accumulation) for the same global batch as one process
    with `batch_size` and `grad_accum`. Accumulation is divided first: each process then takes
    the micro-batches one process would (the same memory per process, N times fewer in a row);
    otherwise the micro-batch is split. study/validate.py checks that one of them divides."""
    n = train.processes
    if train.grad_accum % n == 0:
        return train.batch_size, train.grad_accum // n
    if train.batch_size % n == 0:
        return train.batch_size // n, train.grad_accum
    raise ValueError(f"train.processes: {n} divides neither train.batch_size nor train.grad_accum")


def trainer_arguments(train: TrainConfig) -> dict[str, Any]:
    """TrainingArguments a run over several processes adds: every LoRA weight takes part in
    every forward pass, so DDP need not search for unused ones."""
    return {"ddp_find_unused_parameters": False} if train.processes > 1 else {}


# The training step's name and identity, handed to the launched processes (train.train's `step`, `identity`).
STEP, IDENTITY = "LORASTUDY_STEP", "LORASTUDY_STEP_IDENTITY"


def launch(cfg: StudyConfig, run, paths: StudyPaths, log: Callable[[str], None], step: str, identity: str) -> dict:
    """Train `run` in train.processes processes with `accelerate launch`; its record."""
    train = cfg.train
    if torch.cuda.is_available() and torch.cuda.device_count() < train.processes:
        raise ValueError(
            f"train.processes: {train.processes} processes take one GPU each; this machine has "
            f"{torch.cuda.device_count()}"
        )
    if not torch.cuda.is_available() and train.processes > (os.cpu_count() or 1):
        raise ValueError(
            f"train.processes: {train.processes} CPU processes on a machine with {os.cpu_count()} cores would "
            "only wait for each other"
        )
    if train.distributed == "fsdp" and not torch.cuda.is_available():
        raise ValueError("train.distributed: fsdp shards the model across GPUs and this machine has none; use ddp")
    scratch = scratch_dir("lorastudy-launch-")
    try:
        spec = scratch / "params.json"
        atomic_write_json(spec, loadable(cfg))
        command = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            *launch_flags(cfg, methods.get(run.method, cfg)),
            "-m",
            "lorastudy.train.launched",
            str(spec),
            run.method,
            str(run.seed),
        ]
        log(f"training {run.name} in {train.processes} processes ({train.distributed}): accelerate launch")
        env = {**os.environ, LAUNCHED: "1", "PYTHONUNBUFFERED": "1", STEP: step, IDENTITY: identity}
        _follow(command, env, log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return read_json(paths.train_json(run.name))


def _follow(command: list[str], env: dict[str, str], log: Callable[[str], None]) -> None:
    """Run the launcher, passing its output on as it comes; its last lines in the error."""
    tail: deque[str] = deque(maxlen=30)
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            tail.append(line.rstrip())
            log(line.rstrip())
    if proc.returncode != 0:
        raise DistributedTrainingFailed(
            f"accelerate launch exited with status {proc.returncode}; its last lines:\n" + "\n".join(tail)
        )


def launch_flags(cfg: StudyConfig, method) -> list[str]:
    """`accelerate launch` options for the study's settings and the method's, all given, so
    that no accelerate config file of the user's changes what runs."""

    flags = [
        "--num_processes",
        str(cfg.train.processes),
        "--num_machines",
        "1",
        "--main_process_port",
        str(_free_port()),  # two trainings launched at once on one node need two ports
        "--mixed_precision",
        {"bf16": "bf16", "fp16": "fp16"}.get(resolve_precision(method.settings(cfg), method), "no"),
        "--dynamo_backend",
        "no",
    ]
    if cfg.train.distributed == "ddp":
        # accelerate's torchrun launcher; without CUDA its processes train on the CPU with gloo.
        return [*flags, "--multi_gpu"]
    return [
        *flags,
        "--use_fsdp",
        "--fsdp_version",
        "1",
        "--fsdp_sharding_strategy",
        "FULL_SHARD",
        "--fsdp_auto_wrap_policy",
        "TRANSFORMER_BASED_WRAP",
        "--fsdp_use_orig_params",
        "false",
        "--fsdp_sync_module_states",
        "true",
        # Process 0 loads the weights on the CPU and the others their shapes only (models.load_kwargs).
        "--fsdp_cpu_ram_efficient_loading",
        "true",
        "--fsdp_state_dict_type",
        "FULL_STATE_DICT",
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loadable(cfg: StudyConfig) -> dict[str, Any]:
    """The resolved parameters as a params file that load_config reads back to the same config."""
    params = cfg.to_dict()
    params["tasks"] = {t["name"]: {k: v for k, v in t.items() if k != "name"} for t in params["tasks"]}
    return params


def combine(fit: dict) -> dict:
    """The training figures of all processes: each one's peak memory, their total, the largest
    (what one device must hold, the figure a one-process run reports), the slowest process's
    time, and tokens per second over all of them (the Trainer counts every process's tokens)."""
    mine = {"train_peak": fit["train_peak"], "wall_s": fit["wall_s"]}
    every = [mine]
    if torch.distributed.is_initialized():
        every = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(every, mine)
    per_process = [
        {"rank": rank, "peak_memory_mb": round(headline_peak_bytes(p["train_peak"]) / MB, 1), "wall_s": p["wall_s"]}
        for rank, p in enumerate(every)
    ]
    wall_s = max(p["wall_s"] for p in every)
    return {
        **fit,
        "processes": len(every),
        "per_process": per_process,
        "train_peak": largest_peak([p["train_peak"] for p in every]),
        "peak_memory_mb": max(p["peak_memory_mb"] for p in per_process),
        "peak_memory_mb_total": round(sum(p["peak_memory_mb"] for p in per_process), 1),
        "wall_s": wall_s,
        "tokens_per_s": fit["tokens_seen"] / wall_s if wall_s > 0 else None,
    }


def full_state_dict(trainer) -> dict | None:
    """Under FSDP the adapter's weights are sharded: every process takes part in gathering them
    whole, for process 0 to save. None otherwise (the model's own weights are whole)."""
    if not getattr(trainer, "is_fsdp_enabled", False):
        return None
    trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    return trainer.accelerator.get_state_dict(trainer.model)
