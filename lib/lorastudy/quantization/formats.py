"""The storage formats bitsandbytes offers for a linear layer's weight, and how a format's
figures pool over layers. Free of torch, so the report step can read the recorded figures
without importing it (quantization.py measures them)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..study.schema import QuantConfig


BLOCKSIZE = 64  # bitsandbytes' default for Linear4bit, which transformers' loader uses


@dataclass(frozen=True)
class Format:
    """A way bitsandbytes stores a linear layer's weight."""

    name: str
    title: str
    bits: int
    quant_type: str | None = None  # nf4 or fp4 for 4 bits
    double_quant: bool = False  # the 4-bit block constants themselves quantized to 8 bits


FORMATS = (
    Format("nf4-dq", "NF4 + DQ", 4, "nf4", True),
    Format("nf4", "NF4", 4, "nf4", False),
    Format("fp4-dq", "FP4 + DQ", 4, "fp4", True),
    Format("fp4", "FP4", 4, "fp4", False),
    Format("int8", "LLM.int8", 8),
)


def format_of(quant: QuantConfig) -> str:
    """The name of the format a base loaded with `quant` stores its linear layers in."""
    if quant.bits == 8:
        return "int8"
    return f"{quant.quant_type}-dq" if quant.double_quant else quant.quant_type


def depth(name: str) -> int | None:
    """The block a layer sits in (model.layers.3.mlp.up_proj: 3); None outside the blocks."""
    found = re.search(r"\.(\d+)\.", f".{name}.")
    return int(found.group(1)) if found else None


def pooled(rows: list[dict]) -> dict:
    """The rows' error pooled over their weights, and their bits per weight."""
    error, norm = sum(r["error_sq"] for r in rows), sum(r["norm_sq"] for r in rows)
    weights, stored = sum(r["weights"] for r in rows), sum(r["stored_bytes"] for r in rows)
    return {
        "relative_error": math.sqrt(error / norm) if norm > 0 else float("nan"),
        "bits_per_weight": 8 * stored / weights if weights else float("nan"),
        "stored_bytes": stored,
        "weights": weights,
        "layers": len(rows),
    }
