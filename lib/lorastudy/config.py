"""Study parameters: one YAML file per study, loaded into a validated, frozen StudyConfig.

Unknown keys and wrong types are errors that name the key (papermill only warns about
unknown parameters, so lorastudy checks). Validation collects every problem before
raising, so a user fixes a params file in one pass instead of one error at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from . import tasks as task_registry

DEFAULT_METHODS = ("base", "lora", "qlora")
BUILTIN_MODEL = "builtin:tiny-qwen3"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """A params file or override is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class ModelConfig:
    # A hub id (Qwen/Qwen3-0.6B), a local model folder, or a built-in model built offline:
    # builtin:tiny-qwen3 or builtin:smollm2-135m-instruct (see builtin_models.py).
    name: str = BUILTIN_MODEL
    # Weights dtype of the unquantized ("16-bit") base.
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    trust_remote_code: bool = False
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    # A hub model's branch, tag or commit. The data step resolves it to a commit once and every
    # later step loads that commit, so one study never mixes two versions of the weights.
    revision: str | None = None


@dataclass(frozen=True)
class DataConfig:
    # synthetic: generated offline in the real datasets' schemas; hub: downloaded by id;
    # local: JSONL or Parquet files in local_dir named after the datasets (see data.py).
    source: Literal["synthetic", "hub", "local"] = "synthetic"
    local_dir: str | None = None
    # The task whose data the adapters are trained on (its declaration says how a row becomes
    # a training example); its evaluation items are held out of the same pool.
    train_task: str = "openmath"
    # A hub dataset's branch, tag or commit, per task name (hub source); the commit each
    # resolved to is recorded in the data summary and the report.
    revisions: dict[str, str] = field(default_factory=dict)
    train_samples: int = 1000
    max_seq_len: int = 512
    seed: int = 0


@dataclass(frozen=True)
class TaskConfig:
    name: str
    # Items evaluated; None means the whole evaluation split.
    n: int | None = None
    max_new_tokens: int | None = None


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


@dataclass(frozen=True)
class ReportConfig:
    bootstrap_resamples: int = 2000
    confidence: float = 0.95
    alpha: float = 0.05
    examples: int = 5


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

    def runs(self) -> list[Run]:
        """One run per method and seed; a method that neither trains nor evaluates what another
        trained is evaluated once (greedy decoding does not depend on the seed)."""
        from . import methods as method_registry  # methods validate their overrides against this module

        runs = []
        for method in self.methods:
            declared = method_registry.get(method)
            per_seed = declared.trains or declared.evaluates is not None
            for seed in self.seeds if per_seed else self.seeds[:1]:
                name = method if not per_seed or len(self.seeds) == 1 else f"{method}_seed{seed}"
                runs.append(Run(method=method, seed=seed, name=name))
        return runs

    def run(self, method: str, seed: int) -> Run:
        """The run that trains and evaluates `method` with `seed` (for a method evaluated once,
        its one run whatever the seed)."""
        from . import methods as method_registry

        declared = method_registry.get(method)
        once = not declared.trains and declared.evaluates is None
        for run in self.runs():
            if run.method == method and (run.seed == seed or once):
                return run
        raise ConfigError(
            [
                f"method {method!r} with seed {seed} is not a run of study {self.study!r} "
                f"(runs: {', '.join(r.name for r in self.runs())})"
            ]
        )

    def trained_run(self, run: Run) -> Run | None:
        """The run whose trained weights `run` evaluates: its own for a method that trains, the
        same seed's run of the method it evaluates for a cross-evaluation, None for the base."""
        from . import methods as method_registry

        method = method_registry.get(run.method)
        if method.trains:
            return run
        if method.evaluates is not None:
            return self.run(method.evaluates, run.seed)
        return None


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


# ---------------------------------------------------------------- loading and validation


def load_config(
    path: str | Path, overrides: dict[str, Any] | list[str] | None = None, root: str | Path | None = None
) -> StudyConfig:
    """Read a params file, apply overrides (`{"train.learning_rate": 1e-4}` or
    `["train.learning_rate=1e-4"]`), and validate everything. Raises ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"{path}: params file not found"])
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML ({exc})"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping of parameters at the top level"])
    problems: list[str] = []
    for key, value in parse_overrides(overrides, problems).items():
        _set_dotted(raw, key, value, problems)
    if root is not None:
        raw["root"] = str(root)
    cfg = _build(StudyConfig, raw, "", problems)
    if cfg is not None:
        problems += _check_values(cfg)
    if problems:
        raise ConfigError(problems)
    from . import methods as method_registry

    return method_registry.expand_grid(cfg)


def parse_overrides(overrides: dict[str, Any] | list[str] | None, problems: list[str]) -> dict[str, Any]:
    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    parsed = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            problems.append(f"override {item!r}: expected KEY=VALUE, e.g. train.learning_rate=1e-4")
            continue
        parsed[key.strip()] = yaml.safe_load(text) if text.strip() else None
    return parsed


def _set_dotted(raw: dict, key: str, value: Any, problems: list[str]) -> None:
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        if part == "tasks" and isinstance(node.get("tasks"), dict):
            node = node["tasks"]
            continue
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append(f"{key}: cannot set inside {part!r}, which is not a section")
            return
        node = child
    node[leaf] = value


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"a mapping of {_type_name(key)} to {_type_name(value)}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """(ok, value) for value against a type annotation; never guesses across types."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return (value in typing.get_args(tp), value)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, coerced = _coerce(arg, value)
            if ok:
                return True, coerced
        return False, value
    if origin in (list, tuple):
        if isinstance(value, (int, str)) and not isinstance(value, bool) and origin is tuple:
            value = [value]  # `seeds: 0` means `seeds: [0]`
        if not isinstance(value, (list, tuple)):
            return False, value
        (inner, *_rest) = typing.get_args(tp)
        items = [_coerce(inner, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        return True, origin(v for _, v in items)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, dict):
            return False, value
        items = [(_coerce(key_type, k), _coerce(value_type, v)) for k, v in value.items()]
        if not all(k[0] and v[0] for k, v in items):
            return False, value
        return True, {k[1]: v[1] for k, v in items}
    if tp is type(None):
        return (value is None, value)
    if tp is bool:
        return (isinstance(value, bool), value)
    if tp is int:
        return (isinstance(value, int) and not isinstance(value, bool), value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        # PyYAML reads 2e-4 (no dot) as a string; accept strings that are plain numbers.
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value.strip()):
            return True, float(value)
        return False, value
    if tp is str:
        return (isinstance(value, str), value)
    raise TypeError(f"unsupported annotation {tp}")


def _build(cls: type, raw: Any, prefix: str, problems: list[str]) -> Any:
    where = prefix.rstrip(".") or "the params file"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a section (mapping), got {raw!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            known = ", ".join(sorted(fields))
            problems.append(f"{prefix}{key}: unknown parameter (known here: {known})")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems.append(f"{prefix}{name}: required")
            continue
        value, tp = raw[name], hints[name]
        if dataclasses.is_dataclass(tp):
            built = _build(tp, value, f"{prefix}{name}.", problems)
            if built is not None:
                kwargs[name] = built
        elif cls is StudyConfig and name == "tasks":
            kwargs[name] = _build_tasks(value, problems)
        else:
            ok, coerced = _coerce(tp, value)
            if ok:
                kwargs[name] = coerced
            else:
                problems.append(f"{prefix}{name}: expected {_type_name(tp)}, got {value!r}")
    try:
        return cls(**kwargs)
    except TypeError:
        return None  # a required field is missing; already reported


def _build_tasks(value: Any, problems: list[str]) -> tuple[TaskConfig, ...]:
    if isinstance(value, list):  # `tasks: [openmath, squad]` takes each task's defaults
        value = {name: {} for name in value}
    if not isinstance(value, dict):
        problems.append(f"tasks: expected a mapping of task name to settings, got {value!r}")
        return ()
    tasks = []
    for name, settings in value.items():
        if name not in task_registry.TASKS:
            known = ", ".join(task_registry.TASKS.names())
            problems.append(f"tasks.{name}: unknown task (expected one of {known})")
            continue
        built = _build(TaskConfig, {"name": name, **(settings or {})}, f"tasks.{name}.", problems)
        if built is not None:
            tasks.append(built)
    return tuple(tasks)


def _check_values(cfg: StudyConfig) -> list[str]:
    """Range and consistency checks that types alone cannot express."""
    problems = _check_names(cfg)

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    for t in cfg.tasks:
        need(
            t.n is None or t.n >= 2,
            f"tasks.{t.name}.n: must be at least 2, as paired tests and intervals need two items "
            "(or null for the whole split)",
        )
        need(t.max_new_tokens is None or t.max_new_tokens > 0, f"tasks.{t.name}.max_new_tokens: must be positive")
    need(cfg.model.name.strip() != "", "model.name: must name a hub id, a local folder or a builtin: model")
    need(cfg.data.train_samples > 0, "data.train_samples: must be positive")
    need(cfg.data.max_seq_len >= 32, "data.max_seq_len: must be at least 32")
    need(
        cfg.data.source != "local" or cfg.data.local_dir is not None,
        "data.local_dir: required when data.source is local",
    )
    need(cfg.lora.r > 0, f"lora.r: must be positive, got {cfg.lora.r}")
    need(cfg.lora.alpha > 0, f"lora.alpha: must be positive, got {cfg.lora.alpha}")
    need(0.0 <= cfg.lora.dropout < 1.0, f"lora.dropout: must be in [0, 1), got {cfg.lora.dropout}")
    need(cfg.train.epochs > 0 or cfg.train.max_steps > 0, "train.epochs: must be positive (or set train.max_steps)")
    need(cfg.train.batch_size > 0, "train.batch_size: must be positive")
    need(cfg.train.grad_accum > 0, "train.grad_accum: must be positive")
    need(cfg.train.learning_rate > 0, "train.learning_rate: must be positive")
    need(0.0 <= cfg.train.warmup_ratio < 1.0, "train.warmup_ratio: must be in [0, 1)")
    need(cfg.train.max_grad_norm > 0, "train.max_grad_norm: must be positive")
    need(cfg.train.logging_steps > 0, "train.logging_steps: must be positive")
    problems += _check_processes(cfg)
    need(cfg.eval.batch_size > 0, "eval.batch_size: must be positive")
    need(cfg.eval.generation_batch_size > 0, "eval.generation_batch_size: must be positive")
    need(cfg.eval.latency_items > 0, "eval.latency_items: must be positive")
    need(
        cfg.report.bootstrap_resamples >= 1000,
        "report.bootstrap_resamples: must be at least 1000 for a stable 95% interval",
    )
    need(0.5 < cfg.report.confidence < 1.0, "report.confidence: must be in (0.5, 1)")
    need(0.0 < cfg.report.alpha < 0.5, "report.alpha: must be in (0, 0.5)")
    need(cfg.report.examples >= 0, "report.examples: must be zero or positive")
    return problems


def _check_processes(cfg: StudyConfig) -> list[str]:
    """The processes must be able to share the global batch evenly; a 4-bit base under FSDP
    must be stored in a float dtype."""
    from . import methods as method_registry

    train, n = cfg.train, cfg.train.processes
    if n < 1:
        return [f"train.processes: must be at least 1, got {n}"]
    problems = []
    if n > 1 and train.grad_accum % n and train.batch_size % n:
        problems.append(
            f"train.processes: {n} processes cannot share the global batch of train.batch_size {train.batch_size} "
            f"x train.grad_accum {train.grad_accum} evenly: make either a multiple of {n}"
        )
    if train.distributed != "fsdp":
        return problems
    known = [method_registry.get(m) for m in cfg.methods if m in method_registry.METHODS]
    if any(m.quantize for m in known) and cfg.quant.storage != cfg.model.dtype:
        problems.append(
            f"quant.storage: FSDP shards only float weights of one dtype, so with train.distributed: fsdp the 4-bit "
            f"weights must be stored as model.dtype ({cfg.model.dtype}), not {cfg.quant.storage}"
        )
    # FSDP (use_orig_params: false) flattens each wrapped unit into one tensor of one dtype; k-bit
    # preparation leaves fp32 norms and embeddings beside the 4-bit weights in the same block.
    # Sharded QLoRA skips it (TRL's SFTTrainer does so for sharded QLoRA).
    for m in known:
        if m.prepares_kbit(cfg) or m.upcast:
            setting = "quant.prepare_kbit: true" if m.quantize else "its fp32 upcasts"
            problems.append(
                f"methods: {m.name} with train.distributed: fsdp: {setting} puts fp32 norms and embeddings beside "
                f"{cfg.model.dtype} weights in one decoder block, and FSDP flattens each block into one dtype; set "
                "quant.prepare_kbit: false (as sharded QLoRA does) or train.distributed: ddp"
                + ("" if m.quantize else f", or leave {m.name} out")
            )
    return problems


def _check_names(cfg: StudyConfig) -> list[str]:
    """The study's name, and the methods, seeds, tasks and datasets it names."""
    from . import methods as method_registry

    problems = []

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    need(
        bool(SAFE_NAME.match(cfg.study)),
        f"study: {cfg.study!r} is not a safe folder name (letters, digits, '.', '_', '-'; at most 64)",
    )
    need(len(cfg.methods) > 0, "methods: at least one method is needed")
    for m in cfg.methods:
        known = ", ".join(method_registry.METHODS.names())
        need(m in method_registry.METHODS, f"methods: unknown method {m!r} (expected some of {known})")
    need(len(set(cfg.methods)) == len(cfg.methods), "methods: a method is listed twice")
    need(len(cfg.seeds) > 0, "seeds: at least one seed is needed")
    need(len(set(cfg.seeds)) == len(cfg.seeds), "seeds: a seed is listed twice")
    need(len(cfg.tasks) > 0, f"tasks: at least one of {', '.join(task_registry.TASKS.names())} is needed")
    datasets = {cfg.data.train_task, *(t.name for t in cfg.tasks)}
    for name in cfg.data.revisions:
        need(
            name in datasets,
            f"data.revisions.{name}: not a dataset of this study (its tasks: {', '.join(sorted(datasets))})",
        )
    need(
        cfg.data.train_task in task_registry.TASKS and task_registry.get(cfg.data.train_task).train_example is not None,
        f"data.train_task: {cfg.data.train_task!r} is not a task that declares training examples",
    )
    known = [m for m in cfg.methods if m in method_registry.METHODS]
    for m in known:
        source = method_registry.get(m).evaluates
        need(
            source is None or source in cfg.methods,
            f"methods: {m!r} evaluates what {source!r} trains; add {source!r} to methods",
        )
    return problems + _check_grid(cfg)


def _check_grid(cfg: StudyConfig) -> list[str]:
    """The grid names methods of the study that train, and settings a method can change, each
    with distinct values of the setting's type."""
    from . import methods as method_registry

    grid, problems = cfg.grid, []
    if not grid.settings:
        return [f"grid.methods: {list(grid.methods)} has no grid.settings to cross"] if grid.methods else []
    if not grid.methods:
        problems.append("grid.methods: name the methods crossed with grid.settings (e.g. [lora, qlora])")
    for m in grid.methods:
        if m not in cfg.methods or m not in method_registry.METHODS:
            problems.append(f"grid.methods: {m!r} is not one of the study's methods")
        elif not method_registry.get(m).trains:
            problems.append(f"grid.methods: {m!r} trains nothing, so no setting of its training can vary")
    defaults = StudyConfig(study="defaults")
    for key, values in grid.settings.items():
        section, _, name = key.partition(".")
        if section not in method_registry.SETTING_SECTIONS or not hasattr(getattr(defaults, section), name):
            problems.append(f"grid.settings.{key}: not a model, lora, quant or train setting (section.field)")
            continue
        tp = typing.get_type_hints(type(getattr(defaults, section)))[name]
        bad = [v for v in values if not _coerce(tp, v)[0]]
        if bad or not values:
            problems.append(f"grid.settings.{key}: expected a list of {_type_name(tp)}, got {list(values)!r}")
        elif len(set(values)) != len(values):
            problems.append(f"grid.settings.{key}: a value is listed twice")
        if key.startswith("lora.") and any(method_registry.get(m).trains_every_weight for m in _known(grid.methods)):
            problems.append(f"grid.settings.{key}: a LoRA setting, but a method crossed with it trains every weight")
    return problems or _check_cells(cfg)


def _check_cells(cfg: StudyConfig) -> list[str]:
    """Each grid cell's name is a safe folder name and no method's but the cell's."""
    from . import methods as method_registry

    problems = []
    for m in cfg.grid.methods:
        for point in method_registry.grid_points(cfg, method_registry.get(m)):
            name = method_registry.cell_name(m, point)
            if not SAFE_NAME.match(name):
                problems.append(f"grid.settings: cell {name!r} is not a safe run name (letters, digits, '.', '_', '-')")
            elif name in method_registry.METHODS and method_registry.get(name).grid_of is None:
                problems.append(f"grid.settings: cell {name!r} has the name of a declared method")
            elif name in cfg.methods:
                problems.append(f"methods: {name!r} is a cell of the grid; list its method in grid.methods instead")
    return problems


def _known(names) -> list[str]:
    from . import methods as method_registry

    return [n for n in names if n in method_registry.METHODS]
