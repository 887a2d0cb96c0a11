"""Validation of a study's values against each other and against the registries of tasks and
methods: one line per problem, before any model loads."""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

from .. import methods
from .. import tasks as task_registry
from ..tasks import harness
from .coerce import coerce, type_name
from .schema import HELD_OUT, SAFE_NAME, StudyConfig


def check(cfg: StudyConfig) -> list[str]:
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
    problems += _check_processes(cfg) + _check_own_data(cfg) + _check_lm_eval_tasks(cfg)
    problems += _check_watching(cfg)
    need(cfg.eval.batch_size > 0, "eval.batch_size: must be positive")
    need(cfg.eval.generation_batch_size > 0, "eval.generation_batch_size: must be positive")
    need(cfg.eval.latency_items > 0, "eval.latency_items: must be positive")
    need(
        cfg.eval.latency_tokens >= 2,
        "eval.latency_tokens: must be at least 2 (the first token gives TTFT, the ones after it TPOT), "
        f"got {cfg.eval.latency_tokens}",
    )
    need(
        cfg.report.bootstrap_resamples >= 1000,
        "report.bootstrap_resamples: must be at least 1000 for a stable 95% interval",
    )
    need(0.5 < cfg.report.confidence < 1.0, "report.confidence: must be in (0.5, 1)")
    need(0.0 < cfg.report.alpha < 0.5, "report.alpha: must be in (0, 0.5)")
    need(cfg.report.examples >= 0, "report.examples: must be zero or positive")
    problems += _check_margins(cfg)
    return problems


def _check_margins(cfg: StudyConfig) -> list[str]:
    """Margins are differences of fractions, and name tasks of the study."""
    margins = cfg.report.equivalence_margin
    named = margins if isinstance(margins, dict) else {"": margins}
    problems = [
        f"report.equivalence_margin{'.' + task if task else ''}: must be in (0, 1), a difference of fractions, "
        f"got {value}"
        for task, value in named.items()
        if not 0.0 < value < 1.0
    ]
    tasks = [t.name for t in cfg.tasks]
    problems += [
        f"report.equivalence_margin.{task}: not a task of this study (its tasks: {', '.join(tasks)})"
        for task in named
        if task and task not in tasks
    ]
    return problems


def _check_processes(cfg: StudyConfig) -> list[str]:
    """The processes must be able to share the global batch evenly; a 4-bit base under FSDP
    must be stored in a float dtype."""
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
    known = [methods.get(m) for m in cfg.methods if m in methods.METHODS]
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


def _check_watching(cfg: StudyConfig) -> list[str]:
    """Validation, checkpoints and tracking: each setting needs what it uses, and a tracker must be
    installed, so a run does not fail at its first log line after the model has loaded."""
    t, problems = cfg.train, []
    for key, value in (("train.eval_steps", t.eval_steps), ("train.save_steps", t.save_steps)):
        if value < 0:
            problems.append(f"{key}: must be 0 (off) or positive, got {value}")
    if cfg.data.validation_samples < 0:
        problems.append(f"data.validation_samples: must be 0 or positive, got {cfg.data.validation_samples}")
    if t.eval_steps > 0 and cfg.data.validation_samples == 0:
        problems.append("train.eval_steps: the validation loss needs held-out items; set data.validation_samples")
    if cfg.data.validation_samples > 0 and t.eval_steps == 0:
        problems.append("data.validation_samples: nothing measures on them; set train.eval_steps (or 0 items)")
    if t.keep_checkpoints and t.save_steps == 0:
        problems.append("train.keep_checkpoints: there are no checkpoints to keep; set train.save_steps")
    if t.save_steps > 0 and t.distributed == "fsdp" and t.processes > 1:
        problems.append("train.save_steps: resuming a sharded (fsdp) training is not supported; use ddp or 0")
    if not 0.0 < cfg.report.under_trained_drop < 1.0:
        problems.append(f"report.under_trained_drop: must be in (0, 1), got {cfg.report.under_trained_drop}")
    trackers = list(t.report_to)
    if "none" in trackers and len(trackers) > 1:
        problems.append(f"train.report_to: 'none' cannot be combined with {[x for x in trackers if x != 'none']}")
    if len(set(trackers)) != len(trackers):
        problems.append("train.report_to: a tracker is listed twice")
    for tracker, module in (("tensorboard", "tensorboard"), ("mlflow", "mlflow")):
        if tracker in trackers and importlib.util.find_spec(module) is None:
            problems.append(
                f"train.report_to: {tracker} is not installed; pip install 'lorastudy[tracking]' (or set none)"
            )
    return problems


def _check_own_data(cfg: StudyConfig) -> list[str]:
    """data.train: the held-out rows and generated replies apply to the formats of a user's own
    conversations; OpenMath's held-out problems are tasks.openmath.n."""
    train = cfg.data.train
    if train is None:
        return []
    problems = []
    if not train.path.strip():
        problems.append("data.train.path: name a JSONL, JSON or Parquet file, or a hub dataset id")
    if not train.conversations:
        if train.held_out or train.exact_match:
            problems.append(
                "data.train.held_out: the openmath format holds out its evaluation problems as tasks.openmath.n; "
                "held_out and exact_match are for the messages and prompt_completion formats"
            )
        return problems
    if train.held_out == 1 or train.held_out < 0:
        problems.append(
            "data.train.held_out: must be 0 or at least 2 (paired tests and intervals need two items), "
            f"got {train.held_out}"
        )
    if train.exact_match and train.held_out <= 0:
        problems.append("data.train.exact_match: needs data.train.held_out rows to generate replies for")
    if train.max_new_tokens <= 0:
        problems.append("data.train.max_new_tokens: must be positive")
    if cfg.data.train_task != HELD_OUT:
        problems.append(
            f"data.train_task: {cfg.data.train_task!r} is not used with data.train in the {train.format} format "
            "(the adapters train on data.train): leave it out"
        )
    return problems


def _check_lm_eval_tasks(cfg: StudyConfig) -> list[str]:
    """Each tasks.<name>.lm_eval: a task the harness can read, of an output type and with metrics that
    lorastudy can evaluate per item, under a name of its own."""
    problems = []
    for t in cfg.tasks:
        if t.lm_eval is None:
            continue
        key = f"tasks.{t.name}"
        if t.name in task_registry.TASKS or t.name == HELD_OUT:
            problems.append(f"{key}: the name of a built-in task; give the lm-eval task a name of its own")
        elif not SAFE_NAME.match(t.name):
            problems.append(f"{key}: not a safe file name (letters, digits, '.', '_', '-'; at most 64)")
        if t.max_new_tokens is not None:
            problems.append(f"{key}.max_new_tokens: an lm-eval task's limit is its generation_kwargs' max_gen_toks")
        try:
            located = harness.locate(t.lm_eval, Path(cfg.root))
        except harness.HarnessError as exc:
            problems.append(f"{key}.lm_eval: {exc}")
            continue
        problems += [f"{key}.lm_eval: {p}" for p in harness.problems(located)]
    return problems


def _check_names(cfg: StudyConfig) -> list[str]:
    """The study's name, and the methods, seeds, tasks and datasets it names."""
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
        known = ", ".join(methods.METHODS.names())
        need(m in methods.METHODS, f"methods: unknown method {m!r} (expected some of {known})")
    need(len(set(cfg.methods)) == len(cfg.methods), "methods: a method is listed twice")
    need(len(cfg.seeds) > 0, "seeds: at least one seed is needed")
    need(len(set(cfg.seeds)) == len(cfg.seeds), "seeds: a seed is listed twice")
    need(
        len(cfg.tasks) > 0,
        f"tasks: at least one task is needed: {', '.join(task_registry.TASKS.names())}, a task of "
        "lm-evaluation-harness (tasks.<name>.lm_eval), or rows of data.train held out (data.train.held_out)",
    )
    datasets = {cfg.data.train_task, *(t.name for t in cfg.tasks)}
    for name in cfg.data.revisions:
        need(
            name in datasets,
            f"data.revisions.{name}: not a dataset of this study (its tasks: {', '.join(sorted(datasets))})",
        )
    train, train_task = cfg.data.train, cfg.data.train_task
    own = train is not None and train.conversations and train_task == HELD_OUT
    need(
        own or (train_task in task_registry.TASKS and task_registry.get(train_task).train_example is not None),
        f"data.train_task: {train_task!r} is not a task that declares training examples",
    )
    known = [m for m in cfg.methods if m in methods.METHODS]
    for m in known:
        source = methods.get(m).evaluates
        need(
            source is None or source in cfg.methods,
            f"methods: {m!r} evaluates what {source!r} trains; add {source!r} to methods",
        )
    return problems + _check_grid(cfg)


def _check_grid(cfg: StudyConfig) -> list[str]:
    """The grid names methods of the study that train, and settings a method can change, each
    with distinct values of the setting's type."""
    grid, problems = cfg.grid, []
    if not grid.settings:
        return [f"grid.methods: {list(grid.methods)} has no grid.settings to cross"] if grid.methods else []
    if not grid.methods:
        problems.append("grid.methods: name the methods crossed with grid.settings (e.g. [lora, qlora])")
    for m in grid.methods:
        if m not in cfg.methods or m not in methods.METHODS:
            problems.append(f"grid.methods: {m!r} is not one of the study's methods")
        elif not methods.get(m).trains:
            problems.append(f"grid.methods: {m!r} trains nothing, so no setting of its training can vary")
    defaults = StudyConfig(study="defaults")
    for key, values in grid.settings.items():
        section, _, name = key.partition(".")
        if section not in methods.SETTING_SECTIONS or not hasattr(getattr(defaults, section), name):
            problems.append(f"grid.settings.{key}: not a model, lora, quant or train setting (section.field)")
            continue
        tp = typing.get_type_hints(type(getattr(defaults, section)))[name]
        bad = [v for v in values if not coerce(tp, v)[0]]
        if bad or not values:
            problems.append(f"grid.settings.{key}: expected a list of {type_name(tp)}, got {list(values)!r}")
        elif len(set(values)) != len(values):
            problems.append(f"grid.settings.{key}: a value is listed twice")
        if key.startswith("lora.") and any(methods.get(m).trains_every_weight for m in _known(grid.methods)):
            problems.append(f"grid.settings.{key}: a LoRA setting, but a method crossed with it trains every weight")
    return problems or _check_cells(cfg)


def _check_cells(cfg: StudyConfig) -> list[str]:
    """Each grid cell's name is a safe folder name and no method's but the cell's."""
    problems = []
    for m in cfg.grid.methods:
        for point in methods.grid_points(cfg, methods.get(m)):
            name = methods.cell_name(m, point)
            if not SAFE_NAME.match(name):
                problems.append(f"grid.settings: cell {name!r} is not a safe run name (letters, digits, '.', '_', '-')")
            elif name in methods.METHODS:
                problems.append(f"grid.settings: cell {name!r} has the name of a declared method")
            elif name in cfg.methods:
                problems.append(f"methods: {name!r} is a cell of the grid; list its method in grid.methods instead")
    return problems


def _known(names) -> list[str]:
    return [n for n in names if n in methods.METHODS]
