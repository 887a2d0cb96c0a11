"""The schema of a study's parameters: one frozen dataclass per section of a params file, and
the StudyConfig that holds them. It imports nothing of lorastudy, so every layer can read it;
load.py reads a params file into it and validate.py checks it against the registries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_METHODS = ("base", "lora", "qlora")


BUILTIN_MODEL = "builtin:tiny-qwen3"


# The equivalence margin of a fraction metric whose task the study gives none.
DEFAULT_MARGIN = 0.02


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# The task a study derives from `data.train` (a messages or prompt_completion file): the adapters
# train on its rows and every method is evaluated on the rows it holds out.
HELD_OUT = "held_out"


# The task the adapters train on unless the params say otherwise (OpenMathInstruct-2's problems).
DEFAULT_TRAIN_TASK = "openmath"


class ConfigError(ValueError):
    """A params file or override is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ModelConfig:
    # A hub id (Qwen/Qwen3-0.6B), a local model folder, or a built-in model built offline:
    # builtin:tiny-qwen3 or builtin:smollm2-135m-instruct (see models/builtin.py).
    name: str = BUILTIN_MODEL
    # Weights dtype of the unquantized ("16-bit") base.
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    trust_remote_code: bool = False
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    # A hub model's branch, tag or commit. The data step resolves it to a commit once and every
    # later step loads that commit, so one study never mixes two versions of the weights.
    revision: str | None = None


@dataclass(frozen=True)
class TrainDataConfig:
    # A JSONL, JSON or Parquet file (relative to the study's root), or a hub dataset id.
    path: str
    # messages: a `messages` list of {role, content} turns, rendered with the model's chat template,
    # the loss on the assistant turns; prompt_completion: `prompt` and `completion` strings, one user
    # and one assistant turn; openmath: rows in OpenMathInstruct-2's schema (the built-in training).
    format: Literal["messages", "prompt_completion", "openmath"] = "openmath"
    # A hub dataset's split, and its branch, tag or commit (resolved and recorded by the data step).
    split: str = "train"
    revision: str | None = None
    # Rows kept out of training and evaluated for every method (messages and prompt_completion):
    # the negative log-likelihood per token of each row's last assistant reply.
    held_out: int = 0
    # Also generate a reply to each held-out row and score its exact match with the reference.
    exact_match: bool = False
    max_new_tokens: int = 128

    @property
    def conversations(self) -> bool:
        """Rows of the user's own conversations (messages, prompt_completion), not a built-in task's."""
        return self.format in ("messages", "prompt_completion")


@dataclass(frozen=True)
class DataConfig:
    # synthetic: generated offline in the real datasets' schemas; hub: downloaded by id;
    # local: JSONL or Parquet files in local_dir named after the datasets (see data/datasets.py).
    source: Literal["synthetic", "hub", "local"] = "synthetic"
    local_dir: str | None = None
    # The task whose data the adapters are trained on (its declaration says how a row becomes
    # a training example); its evaluation items are held out of the same pool.
    train_task: str = DEFAULT_TRAIN_TASK
    # A hub dataset's branch, tag or commit, per task name (hub source); the commit each
    # resolved to is recorded in the data summary and the report.
    revisions: dict[str, str] = field(default_factory=dict)
    train_samples: int = 1000
    # Items of the training task held out of both training and evaluation, on which the
    # validation loss is measured while training (train.eval_steps); 0: none.
    validation_samples: int = 0
    max_seq_len: int = 512
    seed: int = 0
    # The training data as a file or hub dataset of its own (None: the train_task's, from `source`).
    train: TrainDataConfig | None = None


@dataclass(frozen=True)
class TaskConfig:
    name: str
    # Items evaluated; None means the whole evaluation split.
    n: int | None = None
    max_new_tokens: int | None = None
    # A task declared in an lm-evaluation-harness YAML file (relative to the study's root), or the
    # name of a task an installed lm-eval ships; evaluated with the harness's own semantics.
    lm_eval: str | None = None


@dataclass(frozen=True)
class LoraConfig:
    r: int = 64
    alpha: int = 16
    dropout: float = 0.05
    # "all-linear" is peft's shorthand for every linear layer except the output head.
    target_modules: str | list[str] = "all-linear"


@dataclass(frozen=True)
class QuantConfig:
    # 4: NF4 or FP4 (Linear4bit), as below; 8: LLM.int8 (Linear8bitLt), which has neither a
    # data type choice nor double quantization, and computes in float16.
    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True
    compute_dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    # peft's prepare_model_for_kbit_training upcasts every non-quantized weight to fp32
    # (for Qwen3-0.6B its 155.6M-parameter tied embedding): a parameter so its cost is visible.
    prepare_kbit: bool = True
    # The dtype the packed 4-bit weights are stored in (bnb_4bit_quant_storage). uint8 is
    # bitsandbytes' own; FSDP (train.distributed: fsdp) can only shard float tensors of one
    # dtype, so there it must be model.dtype.
    storage: Literal["uint8", "bfloat16", "float16", "float32"] = "uint8"


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 4
    learning_rate: float = 2e-4
    lr_scheduler: Literal["constant_with_warmup", "constant", "linear", "cosine"] = "constant_with_warmup"
    warmup_ratio: float = 0.03
    max_grad_norm: float = 0.3
    weight_decay: float = 0.0
    # auto: paged_adamw_32bit on CUDA (as in the QLoRA paper), adamw_torch elsewhere.
    optim: Literal["auto", "paged_adamw_32bit", "paged_adamw_8bit", "adamw_torch", "adamw_8bit"] = "auto"
    gradient_checkpointing: bool = False
    # auto: bf16 autocast on GPUs that support it, fp32 elsewhere.
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    logging_steps: int = 1
    # Processes one training run is spread over with `accelerate launch` (one GPU each; on a
    # machine without CUDA, CPU processes with the gloo backend). batch_size and grad_accum stay
    # the global batch: the processes share it (train.distributed.per_process_batch), so a run
    # trains on the same batches with any number of processes.
    processes: int = 1
    # How the processes hold the model: ddp, a full copy each; fsdp, sharded across them (for a
    # base too big for one device; QLoRA then stores its 4-bit weights in the compute dtype).
    distributed: Literal["ddp", "fsdp"] = "ddp"
    # The validation loss on data.validation_samples every this many optimizer steps and at
    # the end; 0: not measured.
    eval_steps: int = 0
    # A checkpoint (adapter, optimizer, scheduler, RNG states) every this many optimizer steps,
    # from which a stopped training resumes on the next run; 0: none.
    save_steps: int = 0
    # Checkpoints are removed when a training finishes, unless this is true.
    keep_checkpoints: bool = False
    # The Trainer's tracking integrations, writing under runs/<study>/tracking/, offline.
    report_to: tuple[Literal["none", "tensorboard", "mlflow"], ...] = ("none",)
    # Batches of examples of similar length (less padding); TrainingArguments' name.
    group_by_length: bool = False


# Train settings that change neither the adapter nor the loss curve a training step writes (a
# checkpoint is saved beside the run, a tracker copies its logs), so they are no part of the step's
# identity: turning tracking on does not retrain, and a training resumes whatever save_steps it
# was stopped with.
OUTSIDE_IDENTITY = ("save_steps", "keep_checkpoints", "report_to")


def identity_settings(train: dict[str, Any]) -> dict[str, Any]:
    """A training's settings (TrainConfig as a dict) without those outside its identity."""
    return {k: v for k, v in train.items() if k not in OUTSIDE_IDENTITY}


@dataclass(frozen=True)
class EvalConfig:
    # Rows (context + choice) per forward pass of a log-likelihood task such as ARC.
    batch_size: int = 16
    # Prompts per batch of greedy generation: its own setting, since generation's memory and
    # speed scale differently (a KV cache per prompt, one token per step).
    generation_batch_size: int = 16
    # Per-item latency is timed at batch size 1 on the first items of this task; each item can
    # take up to the task's token limit, so keep it small on a slow device.
    latency_task: str = "openmath"
    latency_items: int = 8
    # Time to first token and time per output token are timed on the same items generating
    # exactly this many tokens (end tokens suppressed), so a method that writes longer answers
    # is not counted slower for it. At least 2: TPOT is the decoding steps after the first.
    latency_tokens: int = 32


@dataclass(frozen=True)
class ReportConfig:
    bootstrap_resamples: int = 2000
    confidence: float = 0.95
    alpha: float = 0.05
    examples: int = 5
    # The largest difference between two trained methods that counts as none, in the metric's
    # units, for the fraction metrics of every task (0.02: two points of accuracy) or per task
    # ({openmath: 0.05}; a task not named gets DEFAULT_MARGIN). Two one-sided tests at each
    # comparison's Holm level decide "equivalent within +-m".
    equivalence_margin: float | dict[str, float] = 0.02

    def margin(self, task: str) -> float:
        if isinstance(self.equivalence_margin, dict):
            return float(self.equivalence_margin.get(task, DEFAULT_MARGIN))
        return float(self.equivalence_margin)

    # A training whose validation loss still fell by more than this share over the last
    # quarter of its steps is flagged as possibly under-trained.
    under_trained_drop: float = 0.02


@dataclass(frozen=True)
class GridConfig:
    # The methods crossed with `settings`. Each cell is an ordinary method named after the
    # method and its settings there (lora-r8), compared with the method itself and, at the same
    # cell, with the crossed methods it is compared with; a cell whose settings are all the
    # method's own is the method itself.
    methods: tuple[str, ...] = ()
    # "section.field": the values it takes (e.g. {"lora.r": [8, 16, 64]}); several settings
    # give every combination.
    settings: dict[str, tuple[int | float | str | bool, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyConfig:
    study: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: tuple[int, ...] = (0,)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tasks: tuple[TaskConfig, ...] = ()
    lora: LoraConfig = field(default_factory=LoraConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    # Relative paths (runs/, rendered/, local data and model folders) resolve against this.
    root: str = "."

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved(self) -> dict[str, Any]:
        """The study's parameters without `root`, which says where this checkout is, not what
        the study does: the same study hashes the same in any checkout."""
        return {k: v for k, v in self.to_dict().items() if k != "root"}

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    def resolve(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else Path(self.root) / path


@dataclass(frozen=True)
class Run:
    method: str
    seed: int
    name: str  # the folder and file name of this run's outputs


def is_local(name: str) -> bool:
    """A model name that is a local folder rather than a hub id."""
    return name.startswith(("/", ".", "~")) or Path(name).expanduser().is_dir()


def params_hash(obj: Any) -> str:
    """A short, stable hash of resolved parameters (JSON with sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
