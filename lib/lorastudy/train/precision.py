"""The precision and optimizer a training runs with, resolved from the params and the device."""

from __future__ import annotations

import torch

from ..methods.declaration import Method
from ..study.schema import StudyConfig

AUTOCAST_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def compute_dtype(cfg: StudyConfig, method: Method) -> str:
    """The dtype the params say a method computes in: a 4-bit base's compute dtype, otherwise
    the weights' own."""
    quant = method.quant(cfg)
    return quant.compute_dtype if quant is not None and quant.bits == 4 else cfg.model.dtype


def resolve_precision(cfg: StudyConfig, method: Method) -> str:
    """The Trainer's mixed precision: the params' own, or with `auto` autocast to the dtype the
    params compute in where the GPU has it (bf16, fp16), and none (fp32) otherwise: a float32
    study computes in float32 on a GPU too."""
    if cfg.train.precision != "auto":
        return cfg.train.precision
    dtype = compute_dtype(cfg, method)
    if not torch.cuda.is_available():
        return "fp32"
    if dtype == "bfloat16" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp16" if dtype == "float16" else "fp32"


def ran_in(cfg: StudyConfig, method: Method) -> str:
    """The compute precision that ran, for the record and the report: the autocast dtype where
    the Trainer autocasts, the dtype of the computation otherwise."""
    precision = resolve_precision(cfg, method)
    if precision in AUTOCAST_DTYPES:
        return f"{AUTOCAST_DTYPES[precision]} (autocast)"
    return compute_dtype(cfg, method)


def resolve_optim(cfg: StudyConfig) -> str:
    if cfg.train.optim != "auto":
        return cfg.train.optim
    return "paged_adamw_32bit" if torch.cuda.is_available() else "adamw_torch"
