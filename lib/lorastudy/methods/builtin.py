"""The built-in methods and decompositions, registered on import: the base; LoRA and QLoRA (LoRA
with a quantized base, as torchtune's `quantize_base=True`: one training path, one flag); LoRA
on FP4, NF4 without double quantization and LLM.int8 bases; DoRA; full fine-tuning; the two
ablations that separate quantization from k-bit preparation's fp32 upcasts (`qlora-noprep`,
`lora-upcast`); and the cross-evaluations that run one method's adapter on another's base
(`qlora-on-16bit`, `lora-on-nf4`).

Adding a method: declare a `Method` here and add it to `_BUILTIN` (or call `register` from
your own code before the study runs), and add a test that its model is what it claims to be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..study.schema import StudyConfig
from .declaration import DECOMPOSITIONS, Comparison, Decomposition, Method, Part, quant_text, register


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
    lambda cfg: f"QLoRA trains the same adapter on an {quant_text(cfg)}, and is evaluated on it.",
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
    lambda cfg: f"QLoRA FP4 trains the same adapter on an {quant_text(cfg)}.",
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
    lambda cfg: f"QLoRA NF4 without DQ trains the same adapter on an {quant_text(cfg)}: its block constants stay fp32.",
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
    lambda cfg: f"LoRA 8-bit trains the same adapter on an {quant_text(cfg)}.",
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
        f"QLoRA without k-bit preparation trains the same adapter on the same {quant_text(cfg)}, but leaves the "
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
    lambda cfg: f"LoRA's adapter, trained on the 16-bit base, evaluated on QLoRA's {quant_text(cfg)}.",
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


for _decomposition in (PRECISION, TRAIN_OR_RUN):
    DECOMPOSITIONS.register(_decomposition)
