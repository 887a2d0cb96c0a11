"""What a method declaration holds (Method, Comparison, Decomposition) and the registries they
are registered in."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..util.registry import Registry

if TYPE_CHECKING:
    from ..study.schema import QuantConfig, StudyConfig

# What a method trains: a LoRA adapter, a DoRA adapter (LoRA with a learned magnitude per
# output feature: peft's use_dora), every weight of the base ("full"), or nothing.
AdapterKind = Literal["lora", "dora", "full"]


SETTING_SECTIONS = ("model", "lora", "quant", "train")


def quant_text(cfg: StudyConfig) -> str:
    q = cfg.quant
    if q.bits == 8:
        return "LLM.int8 8-bit base (bitsandbytes: row-wise absmax int8 weights, outlier features above 6.0 in 16-bit)"
    double = "double-quantized" if q.double_quant else "without double quantization"
    return f"{q.quant_type.upper()} 4-bit base ({double}; bitsandbytes, compute dtype {q.compute_dtype})"


@dataclass(frozen=True)
class Comparison:
    """One comparison a method's declaration asks for, with the question it answers."""

    method: str  # the method compared with (the difference is this method minus that one)
    reason: str  # why the report makes it: the question the difference answers
    # Stated in the executive summary, with its costs and a recommendation; the other
    # comparisons are reported in full in the method-space section.
    headline: bool = False


@dataclass(frozen=True)
class Method:
    name: str
    # How tables, legends and sentences name it.
    title: str
    colour: str
    # One sentence for the report: what the method is, with the study's settings.
    describe: Callable[[StudyConfig], str]
    # What it trains (see AdapterKind); None: it is evaluated as loaded.
    adapter: AdapterKind | None = "lora"
    # Load the base quantized with the study's `quant` section (bitsandbytes).
    quantize: bool = False
    # A 16-bit base with k-bit preparation's fp32 upcasts: every weight a quantizer would leave
    # unquantized (embeddings, norms, the head) cast to fp32, and each linear layer computing in
    # its own dtype and returning the input's, as bitsandbytes' quantized layers do.
    upcast: bool = False
    # Trains nothing itself: evaluates what this method of the study trained (the run with the
    # same seed) on the base this declaration loads.
    evaluates: str | None = None
    # Refused at `check` for a model with more parameters (full fine-tuning holds a gradient and
    # optimizer state for every weight, so it is offered where the model is small enough).
    max_params: int | None = None
    # Comparisons with other methods, when both are in a study, in this order: a Comparison, or a
    # method's name (a headline comparison with a generic reason).
    compares_to: tuple[str | Comparison, ...] = ()
    # How a sentence names it ("LoRA vs the base model"); defaults to the title.
    phrase: str = ""
    # Study settings this method changes, as "section.field": value (e.g. {"lora.r": 8} or
    # {"quant.quant_type": "fp4"}), or a function of the study's settings; its runs train and
    # evaluate with them.
    overrides: Mapping[str, Any] = field(default_factory=dict)
    # A cell of the params file's grid: the method it was derived from and its settings there.
    grid_of: str | None = None
    grid_point: Mapping[str, Any] = field(default_factory=dict)

    @property
    def trains(self) -> bool:
        return self.adapter is not None

    @property
    def trains_every_weight(self) -> bool:
        """Full fine-tuning: its "adapter" folder holds the whole model, loaded as the base."""
        return self.adapter == "full"

    @property
    def decomposes_weights(self) -> bool:
        """DoRA: a learned magnitude per output feature beside LoRA's low-rank direction update."""
        return self.adapter == "dora"

    @property
    def in_text(self) -> str:
        return self.phrase or self.title

    def settings(self, cfg: StudyConfig) -> StudyConfig:
        """The study's settings as this method's runs use them (its overrides applied)."""
        study = cfg
        for key, value in self.overrides.items():
            section, name = key.split(".")
            value = value(study) if callable(value) else value
            cfg = dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})
        return cfg

    def quant(self, cfg: StudyConfig) -> QuantConfig | None:
        """The quantization its base is loaded with; None for a 16-bit base."""
        return self.settings(cfg).quant if self.quantize else None

    def prepares_kbit(self, cfg: StudyConfig) -> bool:
        """Whether peft's k-bit preparation runs before the adapter is added."""
        return self.quantize and self.settings(cfg).quant.prepare_kbit

    def comparisons(self) -> tuple[Comparison, ...]:
        return tuple(
            c if isinstance(c, Comparison) else Comparison(c, f"what {self.title} changes against {c}", headline=True)
            for c in self.compares_to
        )

    def builds_text(self, cfg: StudyConfig) -> str:
        """What it trains and on which base, in words, with the study's settings."""
        trained = {"lora": "a LoRA adapter", "dora": "a DoRA adapter", "full": "every weight"}
        what = trained.get(self.adapter or "", f"nothing: runs the weights {self.evaluates} trained")
        if self.evaluates is None and not self.trains:
            what = "nothing"
        settings = self.settings(cfg)
        if self.quantize:
            prep = (
                ""
                if not self.trains
                else ", k-bit preparation"
                if self.prepares_kbit(cfg)
                else ", no k-bit preparation"
            )
            base = f"{quant_text(settings).replace(' base', '')}{prep}"
        else:
            base = f"unquantized ({settings.model.dtype})" + (", fp32 upcasts" if self.upcast else "")
        return f"{what}; base: {base}"

    def build(self) -> dict[str, Any]:
        """What its declaration says of how its runs are built, beyond its overrides (a step's
        identity holds it, so changing a declaration redoes the method's steps)."""
        return {
            "adapter": self.adapter,
            "quantize": self.quantize,
            "upcast": self.upcast,
            "evaluates": self.evaluates,
        }


@dataclass(frozen=True)
class Part:
    label: str  # what the part measures ("fp32 upcasts")
    a: str
    b: str  # the part is method a minus method b


@dataclass(frozen=True)
class Decomposition:
    """A difference between two methods split into parts along paths through other methods of
    the study: each path's parts are differences that add up to the total exactly (a telescoping
    sum), and two paths through a 2 x 2 design give each factor's part with and without the
    other; where they disagree, the factors interact."""

    name: str
    title: str
    question: str
    total: tuple[str, str]
    paths: tuple[tuple[Part, ...], ...]
    # What the report adds for a study's settings (e.g. where a part is nil by construction).
    note: Callable[[StudyConfig], str] = lambda cfg: ""

    @property
    def methods(self) -> set[str]:
        return {self.total[0], self.total[1]} | {m for path in self.paths for p in path for m in (p.a, p.b)}


def _check(method: Method) -> None:
    from ..study.schema import StudyConfig

    defaults = StudyConfig(study="defaults")
    for key in method.overrides:
        section, _, name = key.partition(".")
        if section not in SETTING_SECTIONS or not hasattr(getattr(defaults, section), name):
            raise ValueError(f"method {method.name!r}: override {key!r} is not a model, lora, quant or train setting")
    if method.adapter == "full" and method.quantize:
        raise ValueError(f"method {method.name!r}: full fine-tuning cannot train a quantized base")
    if method.upcast and method.quantize:
        raise ValueError(f"method {method.name!r}: upcast is the 16-bit ablation of k-bit preparation; drop quantize")
    if method.evaluates is not None and method.trains:
        raise ValueError(f"method {method.name!r}: a method that evaluates another's weights trains nothing")


METHODS: Registry[Method] = Registry("method", _check)


register = METHODS.register


DECOMPOSITIONS: Registry[Decomposition] = Registry("decomposition")
