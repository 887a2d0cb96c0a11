"""The methods a study compares, each declared once: how its base model is loaded, what it
trains, which other methods it is compared with and why. QLoRA is LoRA with a quantized base
(as torchtune's `quantize_base=True`): one training path, one flag. Training, evaluation, the
runner, the result tables and the report read these declarations and hold no per-method branches.

The method space: LoRA and DoRA adapters, full fine-tuning, and the same adapter on bases
quantized to NF4 or FP4 (with or without double quantization) or LLM.int8; two ablations that
separate quantization from the fp32 upcasts peft's k-bit preparation makes (`qlora-noprep`,
`lora-upcast`); and cross-evaluations that run one method's adapter on another method's base
(`qlora-on-16bit`, `lora-on-nf4`). A params file's `grid` crosses methods with settings (LoRA
ranks, say); each cell is an ordinary method whose declaration is derived here, at config time.

Adding a method: declare a `Method` below and add it to `_BUILTIN` (or call `register`), and
add a test that its model is what it claims to be.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .registry import Registry

if TYPE_CHECKING:
    from .config import QuantConfig, StudyConfig

# What a method trains: a LoRA adapter, a DoRA adapter (LoRA with a learned magnitude per
# output feature: peft's use_dora), every weight of the base ("full"), or nothing.
AdapterKind = Literal["lora", "dora", "full"]
SETTING_SECTIONS = ("model", "lora", "quant", "train")


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
            base = f"{_quant_text(settings).replace(' base', '')}{prep}"
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


def _quant_text(cfg: StudyConfig) -> str:
    q = cfg.quant
    if q.bits == 8:
        return "LLM.int8 8-bit base (bitsandbytes: row-wise absmax int8 weights, outlier features above 6.0 in 16-bit)"
    double = "double-quantized" if q.double_quant else "without double quantization"
    return f"{q.quant_type.upper()} 4-bit base ({double}; bitsandbytes, compute dtype {q.compute_dtype})"


def _rank(cfg: StudyConfig) -> str:
    return f"rank {cfg.lora.r}, alpha {cfg.lora.alpha}"


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
    lambda cfg: f"LoRA trains an adapter ({_rank(cfg)}) on the unquantized base ({cfg.model.dtype} weights).",
    compares_to=(Comparison("base", "what fine-tuning with LoRA gains over the base model", headline=True),),
)
QLORA = Method(
    "qlora",
    "QLoRA",
    "#d62728",
    lambda cfg: f"QLoRA trains the same adapter on an {_quant_text(cfg)}, and is evaluated on it.",
    quantize=True,
    compares_to=(
        Comparison("base", "what fine-tuning with QLoRA gains over the base model", headline=True),
        Comparison("lora", "what training on the 4-bit base instead of the 16-bit one costs", headline=True),
    ),
)
QLORA_FP4 = Method(
    "qlora-fp4",
    "QLoRA FP4",
    "#ff7f0e",
    lambda cfg: f"QLoRA FP4 trains the same adapter on an {_quant_text(cfg)}.",
    quantize=True,
    overrides={"quant.quant_type": "fp4"},
    compares_to=(
        Comparison("qlora", "which 4-bit data type: FP4 against NF4, the rest alike"),
        Comparison("lora", "what training on the FP4 base instead of the 16-bit one costs"),
    ),
)
QLORA_NF4_NODQ = Method(
    "qlora-nf4-nodq",
    "QLoRA NF4 without DQ",
    "#e377c2",
    lambda cfg: (
        f"QLoRA NF4 without DQ trains the same adapter on an {_quant_text(cfg)}: its block constants stay fp32."
    ),
    quantize=True,
    overrides={"quant.quant_type": "nf4", "quant.double_quant": False},
    compares_to=(
        Comparison("qlora", "what double quantization (8-bit block constants) changes"),
        Comparison("lora", "what training on the NF4 base without double quantization costs against 16 bits"),
    ),
)
LORA_8BIT = Method(
    "lora-8bit",
    "LoRA 8-bit",
    "#9467bd",
    lambda cfg: f"LoRA 8-bit trains the same adapter on an {_quant_text(cfg)}.",
    quantize=True,
    overrides={"quant.bits": 8},
    compares_to=(
        Comparison("lora", "what training on an 8-bit base instead of the 16-bit one costs"),
        Comparison("qlora", "8 bits against 4 for the frozen base"),
    ),
)
DORA = Method(
    "dora",
    "DoRA",
    "#2ca02c",
    lambda cfg: (
        f"DoRA (weight-decomposed LoRA: peft's use_dora) trains a LoRA adapter ({_rank(cfg)}) and a magnitude per "
        f"output feature of each adapted layer, on the unquantized base ({cfg.model.dtype} weights)."
    ),
    adapter="dora",
    compares_to=(Comparison("lora", "what DoRA's learned magnitudes add to LoRA at the same rank"),),
)
FULL = Method(
    "full",
    "full fine-tuning",
    "#17becf",
    lambda cfg: (
        f"Full fine-tuning trains every weight of the unquantized base ({cfg.model.dtype} weights, as torchtune's "
        f"single-device full fine-tuning does) at learning rate {cfg.train.learning_rate:g}, a tenth of the "
        "adapters' (the QLoRA paper tuned full fine-tuning at 1e-5 to 2e-5 against 1e-4 to 2e-4 for LoRA)."
    ),
    adapter="full",
    # Weights, gradients and two AdamW states for each: about 8 bytes a weight in bf16, so a 1B
    # model needs about 8 GB before activations; larger ones are left to the adapters.
    max_params=1_000_000_000,
    overrides={"train.learning_rate": lambda cfg: cfg.train.learning_rate / 10},
    compares_to=(
        Comparison("base", "what full fine-tuning gains over the base model"),
        Comparison("lora", "what LoRA gives up against training every weight"),
    ),
)
QLORA_NOPREP = Method(
    "qlora-noprep",
    "QLoRA without k-bit prep",
    "#8c564b",
    lambda cfg: (
        f"QLoRA without k-bit preparation trains the same adapter on the same {_quant_text(cfg)}, but leaves the "
        f"weights it does not quantize in {cfg.model.dtype} (no fp32 upcasts)."
    ),
    quantize=True,
    overrides={"quant.prepare_kbit": False},
    compares_to=(
        Comparison("qlora", "what k-bit preparation's fp32 upcasts change on the 4-bit base"),
        Comparison("lora", "what quantization alone changes: neither has the fp32 upcasts"),
    ),
)
LORA_UPCAST = Method(
    "lora-upcast",
    "LoRA with fp32 upcasts",
    "#bcbd22",
    lambda cfg: (
        f"LoRA with fp32 upcasts trains the same adapter on the {cfg.model.dtype} base with the upcasts k-bit "
        "preparation makes (embeddings, norms and head in fp32, each linear layer returning fp32), but no "
        "quantization; it is evaluated as LoRA is."
    ),
    upcast=True,
    compares_to=(
        Comparison("lora", "what k-bit preparation's fp32 upcasts alone change, on the 16-bit base"),
        Comparison("qlora", "what quantization alone changes: both have the fp32 upcasts"),
    ),
)
QLORA_ON_16BIT = Method(
    "qlora-on-16bit",
    "QLoRA adapter on 16-bit",
    "#ff9896",
    lambda cfg: (
        f"QLoRA's adapter, trained on the 4-bit base, evaluated on the unquantized base ({cfg.model.dtype} weights)."
    ),
    adapter=None,
    evaluates="qlora",
    compares_to=(
        Comparison("lora", "what training under quantization costs: both adapters run on the 16-bit base"),
        Comparison("qlora", "what running under quantization costs QLoRA's adapter (16-bit minus 4-bit base)"),
    ),
)
LORA_ON_NF4 = Method(
    "lora-on-nf4",
    "LoRA adapter on NF4",
    "#aec7e8",
    lambda cfg: f"LoRA's adapter, trained on the 16-bit base, evaluated on QLoRA's {_quant_text(cfg)}.",
    adapter=None,
    evaluates="lora",
    quantize=True,
    compares_to=(
        Comparison("lora", "what running under quantization costs LoRA's adapter (4-bit minus 16-bit base)"),
        Comparison("qlora", "what training under quantization costs: both adapters run on the 4-bit base"),
    ),
)

PRECISION = Decomposition(
    "precision",
    "Quantization or precision: what QLoRA's difference from LoRA is made of",
    "QLoRA differs from LoRA in two things: its base is quantized, and peft's k-bit preparation casts every "
    "weight it does not quantize (embeddings, norms, head) to fp32. The two ablations separate them.",
    total=("qlora", "lora"),
    paths=(
        (Part("fp32 upcasts", "lora-upcast", "lora"), Part("quantization", "qlora", "lora-upcast")),
        (Part("quantization", "qlora-noprep", "lora"), Part("fp32 upcasts", "qlora", "qlora-noprep")),
    ),
    note=lambda cfg: (
        f"This study's unquantized base is already {cfg.model.dtype}, so the upcasts change no weight's precision: "
        "their parts are nil up to run-to-run noise, and quantization carries the whole difference. On a bfloat16 "
        "base they are not."
        if cfg.model.dtype == "float32"
        else ""
    ),
)
TRAIN_OR_RUN = Decomposition(
    "train-or-run",
    "Training or running under quantization",
    "QLoRA's adapter is trained on the 4-bit base and run on it. Evaluating each adapter on the other base "
    "separates what training under quantization costs from what running under it costs.",
    total=("qlora", "lora"),
    paths=(
        (
            Part("training under quantization", "qlora-on-16bit", "lora"),
            Part("running under it", "qlora", "qlora-on-16bit"),
        ),
        (Part("running under quantization", "lora-on-nf4", "lora"), Part("training under it", "qlora", "lora-on-nf4")),
    ),
)


def _check(method: Method) -> None:
    from .config import StudyConfig

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
register, get = METHODS.register, METHODS.get
_BUILTIN = (
    BASE,
    LORA,
    QLORA,
    QLORA_FP4,
    QLORA_NF4_NODQ,
    LORA_8BIT,
    DORA,
    FULL,
    QLORA_NOPREP,
    LORA_UPCAST,
    QLORA_ON_16BIT,
    LORA_ON_NF4,
)
for _method in _BUILTIN:
    register(_method)
DECOMPOSITIONS: Registry[Decomposition] = Registry("decomposition")
for _decomposition in (PRECISION, TRAIN_OR_RUN):
    DECOMPOSITIONS.register(_decomposition)


# ------------------------------------------------------------------------- the grid


def _value_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def cell_name(method: str, point: Mapping[str, Any]) -> str:
    """A grid cell's name: the method's, then each setting's field and value (lora-r8)."""
    return "-".join([method] + [f"{key.split('.')[1]}{_value_text(v)}" for key, v in point.items()])


def _point_text(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} = {_value_text(v)}" for key, v in point.items())


def _point_title(point: Mapping[str, Any]) -> str:
    return " ".join(f"{key.split('.')[1]}{_value_text(v)}" for key, v in point.items())


def _shade(colour: str, step: int) -> str:
    """The parent's colour, lighter or darker by grid step, so a method's cells read as its family."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    factor = (0.55, 1.35, 0.75, 1.6, 0.4)[step % 5]
    mixed = [min(255, int(c * factor)) if factor < 1 else int(c + (255 - c) * (factor - 1)) for c in rgb]
    return "#" + "".join(f"{min(255, c):02x}" for c in mixed)


def grid_points(cfg: StudyConfig, method: Method) -> list[dict[str, Any]]:
    """The grid's cells for one method, in the params file's order, without the cell whose values
    are all the method's own (that cell is the method itself)."""
    own = method.settings(cfg)
    keys = list(cfg.grid.settings)
    points = []
    for values in itertools.product(*(cfg.grid.settings[k] for k in keys)):
        point = dict(zip(keys, values))
        if any(getattr(getattr(own, k.split(".")[0]), k.split(".")[1]) != v for k, v in point.items()):
            points.append(point)
    return points


def _at(cfg: StudyConfig, method: Method, point: dict[str, Any]) -> str:
    """The method of the study at a grid cell: the cell, or the method itself where the cell's
    settings are its own."""
    return cell_name(method.name, point) if point in grid_points(cfg, method) else method.name


def grid_cell(cfg: StudyConfig, method: Method, point: dict[str, Any], step: int) -> Method:
    """The declaration of one grid cell: the method with the cell's settings, compared with the
    method itself and, at the same cell, with the grid-crossed methods it is compared with."""
    text, title = _point_text(point), f"{method.title} {_point_title(point)}"
    own = method.settings(cfg)
    own_text = _point_text({k: getattr(getattr(own, k.split(".")[0]), k.split(".")[1]) for k in point})
    compares = [Comparison(method.name, f"what {text} instead of {own_text} changes for {method.title}")]
    for c in method.comparisons():
        if c.method in cfg.grid.methods:
            compares.append(Comparison(_at(cfg, get(c.method), point), f"{c.reason}, at {text}"))
    parent = method
    return dataclasses.replace(
        method,
        name=cell_name(method.name, point),
        title=title,
        colour=_shade(method.colour, step),
        describe=lambda c: f"{title}: " + parent.describe(c),
        compares_to=tuple(compares),
        phrase="",
        overrides={**method.overrides, **point},
        grid_of=method.name,
        grid_point=dict(point),
    )


def expand_grid(cfg: StudyConfig) -> StudyConfig:
    """The study with its grid's cells registered as methods and listed after the method each
    is derived from. Deterministic: every kernel of a study derives the same declarations."""
    if not cfg.grid.settings:
        return cfg
    listed: list[str] = []
    for name in cfg.methods:
        listed.append(name)
        if name in cfg.grid.methods:
            for step, point in enumerate(grid_points(cfg, get(name))):
                listed.append(register(grid_cell(cfg, get(name), point, step)).name)
    return dataclasses.replace(cfg, methods=tuple(listed))
