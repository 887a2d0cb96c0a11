"""The methods a study compares, each declared once: how its base model is loaded, what it
trains, and which other methods it is compared with. QLoRA is LoRA with a quantized base (as
torchtune's `quantize_base=True`): one training path, one flag. Training, evaluation, the
runner, the result tables and the report read these declarations and hold no per-method branches.

Adding a method: declare a `Method` below and add it to `_BUILTIN` (or call `register`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .registry import Registry

if TYPE_CHECKING:
    from .config import QuantConfig, StudyConfig


@dataclass(frozen=True)
class Method:
    name: str
    # How tables, legends and sentences name it.
    title: str
    colour: str
    # One sentence for the report: what the method is, with the study's settings.
    describe: Callable[[StudyConfig], str]
    # What it trains: a LoRA adapter, or nothing (evaluated as loaded).
    adapter: Literal["lora"] | None = "lora"
    # Load the base quantized with the study's `quant` section (bitsandbytes).
    quantize: bool = False
    # Methods it is compared with when both are in a study, in this order.
    compares_to: tuple[str, ...] = ()
    # How a sentence names it ("LoRA vs the base model"); defaults to the title.
    phrase: str = ""
    # Study settings this method changes, as "section.field": value (e.g. {"lora.r": 8} or
    # {"quant.quant_type": "fp4"}); its runs train and evaluate with them.
    overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trains(self) -> bool:
        return self.adapter is not None

    @property
    def in_text(self) -> str:
        return self.phrase or self.title

    def settings(self, cfg: StudyConfig) -> StudyConfig:
        """The study's settings as this method's runs use them (its overrides applied)."""
        for key, value in self.overrides.items():
            section, name = key.split(".")
            cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})
        return cfg

    def quant(self, cfg: StudyConfig) -> QuantConfig | None:
        """The quantization its base is loaded with; None for a 16-bit base."""
        return self.settings(cfg).quant if self.quantize else None

    def prepares_kbit(self, cfg: StudyConfig) -> bool:
        """Whether peft's k-bit preparation runs before the adapter is added."""
        return self.quantize and self.settings(cfg).quant.prepare_kbit


def _quant_text(cfg: StudyConfig) -> str:
    q = cfg.quant
    double = ", double-quantized" if q.double_quant else ""
    return f"{q.quant_type.upper()}{double} 4-bit base (bitsandbytes, compute dtype {q.compute_dtype})"


BASE = Method(
    "base",
    "base",
    "#8c8c8c",
    lambda cfg: f"The base model ({cfg.model.dtype} weights) is evaluated as loaded, without fine-tuning.",
    adapter=None,
    phrase="the base model",
)
LORA = Method(
    "lora",
    "LoRA",
    "#1f77b4",
    lambda cfg: f"LoRA trains an adapter on the unquantized base ({cfg.model.dtype} weights).",
    compares_to=("base",),
)
QLORA = Method(
    "qlora",
    "QLoRA",
    "#d62728",
    lambda cfg: f"QLoRA trains the same adapter on a {_quant_text(cfg)}, and is evaluated on it.",
    quantize=True,
    compares_to=("base", "lora"),
)


def _check(method: Method) -> None:
    from .config import StudyConfig

    defaults = StudyConfig(study="defaults")
    for key in method.overrides:
        section, _, name = key.partition(".")
        if section not in ("model", "lora", "quant", "train") or not hasattr(getattr(defaults, section), name):
            raise ValueError(f"method {method.name!r}: override {key!r} is not a model, lora, quant or train setting")


METHODS: Registry[Method] = Registry("method", _check)
register, get = METHODS.register, METHODS.get
for _method in (BASE, LORA, QLORA):
    register(_method)
