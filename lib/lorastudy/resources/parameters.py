"""Parameters and the bytes weights take: logical counts (a 4-bit weight counts as one),
footprints with the quantization constants, bits per quantized weight."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def logical_numel(param: torch.nn.Parameter) -> int:
    """Parameters a weight stands for: bitsandbytes packs two 4-bit values per byte and
    keeps the real shape in quant_state, so its .numel() undercounts by half or more."""
    import torch

    quant_state = getattr(param, "quant_state", None)
    if quant_state is not None and getattr(quant_state, "shape", None) is not None:
        return int(torch.Size(quant_state.shape).numel())
    return param.numel()


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and logical total parameters, tied weights counted once."""
    seen, total, trainable = set(), 0, 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        n = logical_numel(param)
        total += n
        if param.requires_grad:
            trainable += n
    return {"trainable_params": trainable, "total_params": total}


def weights_bytes(model: torch.nn.Module) -> int:
    """Bytes the weights occupy: parameters and buffers, plus the quantization constants
    (absmax, the double-quantized absmax and its code) that bitsandbytes keeps beside them."""

    seen, total = set(), 0

    def add(tensor: torch.Tensor | None) -> None:
        nonlocal total
        if tensor is not None and id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()

    for param in model.parameters():
        add(param)
        add(getattr(param, "SCB", None))  # LLM.int8's row scales
        quant_state = getattr(param, "quant_state", None)
        if quant_state is not None:
            add(getattr(quant_state, "absmax", None))
            add(getattr(quant_state, "code", None))
            nested = getattr(quant_state, "state2", None)
            if nested is not None:
                add(getattr(nested, "absmax", None))
                add(getattr(nested, "code", None))
    for buffer in model.buffers():
        add(buffer)
    return total


def quantized_weights(model: torch.nn.Module) -> dict[str, float]:
    """Bits per quantized weight, measured (QLoRA paper: NF4 + double quant is ~4.127; LLM.int8
    is 8 plus a float32 scale per row)."""
    packed_bytes, constant_bytes, n = 0, 0, 0
    for param in model.parameters():
        scales = getattr(param, "SCB", None)
        if scales is not None:
            n += param.numel()
            packed_bytes += param.numel() * param.element_size()
            constant_bytes += scales.numel() * scales.element_size()
            continue
        quant_state = getattr(param, "quant_state", None)
        if quant_state is None:
            continue
        n += logical_numel(param)
        packed_bytes += param.numel() * param.element_size()
        for tensor in (quant_state.absmax, getattr(getattr(quant_state, "state2", None), "absmax", None)):
            if tensor is not None:
                constant_bytes += tensor.numel() * tensor.element_size()
        if getattr(quant_state, "offset", None) is not None:
            constant_bytes += quant_state.offset.numel() * quant_state.offset.element_size()
    if n == 0:
        return {}
    return {"quantized_params": n, "bits_per_quantized_weight": 8 * (packed_bytes + constant_bytes) / n}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
