"""`lorastudy init|run|check|export|eval`: the command line. Bad input exits with status 2 and one line
per problem, before any model is loaded; a failed step with status 1; a study that another
process is running with status 3, at once; an interrupted run with status 130."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from . import __version__, tasks
from .study.load import load_config, parse_overrides
from .study.runs import runs_of
from .study.schema import ConfigError


def _overrides(items: list[str]) -> dict:
    problems: list[str] = []
    parsed = parse_overrides(items, problems)
    if problems:
        raise ConfigError(problems)
    return parsed


def cmd_check(args: argparse.Namespace) -> int:
    from .pipeline.checks import check_study, device_problems

    start = time.perf_counter()
    cfg = load_config(args.params, _overrides(args.param), root=args.root)
    check_study(cfg)
    # torch and the model code only once the parameters are valid: a bad file is answered at once.
    import torch

    from .models.source import model_folder
    from .pipeline import estimate

    problems = device_problems(cfg, args.allow_cpu)
    device = estimate.CUDA if torch.cuda.is_available() else estimate.CPU
    n_params = estimate.parameters(cfg, model_folder(cfg.model, Path(args.root) / "runs" / "_models", cfg.resolve))
    measured = estimate.measured_latency(cfg, device)
    print(estimate.format_plan(estimate.plan(cfg, n_params, device, measured), device, n_params))
    print(estimate.latency_line(cfg, device, n_params, measured))
    from .pipeline.equivalence import equivalence_plan

    print(equivalence_plan(cfg))
    if problems:
        raise ConfigError(problems)
    runs = ", ".join(r.name for r in runs_of(cfg))
    print(
        f"{args.params}: ok (study {cfg.study}; runs {runs}; tasks "
        f"{', '.join(t.name for t in cfg.tasks)}; checked in {time.perf_counter() - start:.2f} s)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.checks import device_problems
    from .pipeline.scheduler import run_study

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    overrides = _overrides(args.param)
    # On a cluster the steps run on its nodes, whose devices this machine cannot see.
    allow_cpu = args.allow_cpu or (args.executor == "ray" and args.address is not None)
    problems = device_problems(load_config(args.params, overrides, root=args.root), allow_cpu)
    if problems:
        raise ConfigError(problems)
    run_study(args.params, overrides, root=args.root, force=args.force, executor=args.executor, address=args.address)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from .scaffold import init_study

    folder = Path(args.folder)
    written = init_study(folder, args.template, args.notebooks)
    for path in written:
        print(f"wrote {path}")
    params = written[0].relative_to(folder)
    print(f"next: cd {folder} && lorastudy check {params} && lorastudy run {params}")
    if args.notebooks:
        print(
            f"notebooks: jupyter lab {folder / 'notebooks'} (copies to explore; lorastudy run executes "
            "the package's own)"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    cfg = load_config(args.params, _overrides(args.param), root=args.root)
    export(cfg, args.method, Path(args.out), merge=args.merge, seed=args.seed)
    return 0


def cmd_build_model(args: argparse.Namespace) -> int:
    from .models.builtin import BUILTIN_MODELS, BuiltinModelUnavailable, builtin_model

    names = args.names or list(BUILTIN_MODELS)
    unknown = [n for n in names if builtin_model(n) is None]
    if unknown:
        raise ConfigError(
            [f"build-model: unknown built-in model {n!r} (known: {', '.join(BUILTIN_MODELS)})" for n in unknown]
        )
    models_dir = Path(args.root) / "runs" / "_models"
    failed = []
    for name in names:
        start = time.perf_counter()
        try:
            path = builtin_model(name).ensure(models_dir)
        except BuiltinModelUnavailable as exc:
            failed.append(f"{exc}")
            continue
        print(f"{name}: {path} (ready in {time.perf_counter() - start:.1f} s)")
    if failed:
        raise ConfigError(failed)
    return 0


def _eval_rows(args: argparse.Namespace):
    """The usable items of --data for --task, after the task's own cleaning; errors name the flag."""
    from .data.datasets import load_local, sample

    problems = []
    data = Path(args.data)
    if not data.is_file():
        problems.append(f"--data: file {data} does not exist")
    if args.adapter and not (Path(args.adapter) / "adapter_config.json").is_file():
        problems.append(f"--adapter: {args.adapter} has no adapter_config.json")
    if args.limit is not None and args.limit <= 0:
        problems.append("--limit: must be positive")
    if args.batch_size <= 0:
        problems.append("--batch-size: must be positive")
    if problems:
        raise ConfigError(problems)
    task = tasks.get(args.task)
    cleaned = task.clean(load_local(data))
    usable = [r for r in cleaned.rows if task.evaluable(r)]
    for _ in range(len(cleaned.rows) - len(usable)):
        cleaned.skip("cannot be evaluated")
    rows = sample(usable, args.limit, 0, task.name)
    if args.limit and len(rows) < args.limit:
        raise ConfigError([f"--limit: asked for {args.limit} items, {data} has {len(rows)} usable"])
    if not rows:
        raise ConfigError([f"--data: {data} has no usable {args.task} items"])
    return rows, cleaned.skipped


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate.step import load_for_eval, run_task
    from .models.loading import load_tokenizer
    from .models.source import model_path
    from .study.schema import ModelConfig, QuantConfig
    from .util.files import atomic_write_json

    rows, skipped = _eval_rows(args)
    import torch

    dtype = args.dtype or ("bfloat16" if torch.cuda.is_available() else "float32")
    model_cfg = ModelConfig(name=args.model, dtype=dtype)
    path = model_path(model_cfg, Path(args.root) / "runs" / "_models", lambda p: Path(args.root) / p)
    tokenizer = load_tokenizer(path, model_cfg)
    quant = QuantConfig(compute_dtype=dtype) if args.load_in_4bit else None
    model = load_for_eval(path, model_cfg, quant, Path(args.adapter) if args.adapter else None)
    result = run_task(model, tokenizer, args.task, rows, args.batch_size, args.max_new_tokens)
    out = {
        "task": args.task,
        "n": result["n"],
        **result["metrics"],
        "items_per_s": result["items_per_s"],
        "skipped": skipped,
        "model": args.model,
        "adapter": args.adapter,
        "load_in_4bit": args.load_in_4bit,
    }
    atomic_write_json(Path(args.out), out)
    print(json.dumps({k: out[k] for k in out if k not in ("skipped",)}, indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="lorastudy", description=__doc__)
    top.add_argument("--version", action="version", version=f"lorastudy {__version__}")
    sub = top.add_subparsers(dest="command", required=True)
    _init_command(sub)

    def study_command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("params", help="the study's params file, e.g. params/smoke.yaml")
        p.add_argument(
            "-p",
            "--param",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a parameter, e.g. -p train.learning_rate=1e-4 (repeatable)",
        )
        p.add_argument("--root", default=".", help="folder that runs/ and rendered/ live in (default: .)")
        p.add_argument("--allow-cpu", action="store_true", help="run a hub model's study on a machine without CUDA")
        return p

    study_command("check", "validate a params file without loading any model").set_defaults(func=cmd_check)
    run = study_command("run", "run the study's notebooks and render its report")
    run.add_argument("--force", action="store_true", help="redo every step, even those already done")
    run.add_argument(
        "--executor",
        choices=["local", "ray"],
        default="local",
        help="local: one step after another on this machine (default); ray: steps as Ray tasks, at the same "
        "time where the study allows (needs the cluster extra: pip install -e '.[cluster]')",
    )
    run.add_argument(
        "--address",
        help="with --executor ray: the Ray cluster to run on (e.g. auto, or ray://head:10001); "
        "without it a local Ray instance starts. --root must be a folder every node sees",
    )
    run.set_defaults(func=cmd_run)

    build = sub.add_parser("build-model", help="build and cache the built-in models, those not already built")
    build.add_argument(
        "names", nargs="*", metavar="NAME", help="e.g. builtin:smollm2-135m-instruct (default: every built-in model)"
    )
    build.add_argument("--root", default=".", help="folder whose runs/_models caches them (default: .)")
    build.set_defaults(func=cmd_build_model)

    exp = study_command("export", "copy a trained run's adapter and model card out, or merge it into its base")
    exp.add_argument("method", help="a method of the study that trains, e.g. qlora")
    exp.add_argument("--out", required=True, help="the folder to write (replaced whole)")
    exp.add_argument("--merge", action="store_true", help="merge the adapter into its base (QLoRA: dequantized)")
    exp.add_argument("--seed", type=int, help="which seed's run (default: the study's first)")
    exp.set_defaults(func=cmd_export)
    _eval_command(sub)
    return top


def _init_command(sub) -> None:
    init = sub.add_parser("init", help="start a study in a new folder: a params file to edit (and notebooks)")
    init.add_argument("folder", metavar="DIR", help="a new or empty folder; it will hold runs/ and rendered/")
    init.add_argument(
        "--template",
        default="smoke",
        # Checked when init runs, not here: a parser that reads the package's params/ would stop
        # every command where they are missing.
        help="the study to start from (default: smoke, offline in about a minute on a CPU; smollm2-135m, a real "
        "model offline; qwen3-0.6b, the real study, which needs the hub and a GPU)",
    )
    init.add_argument(
        "--notebooks", action="store_true", help="also copy the notebooks, set to this study, for JupyterLab"
    )
    init.set_defaults(func=cmd_init)


def _eval_command(sub) -> None:
    ev = sub.add_parser("eval", help="evaluate one model on one task from a local file")
    ev.add_argument("--model", required=True, help="hub id, local model folder, or a builtin: model")
    ev.add_argument("--adapter", help="a LoRA adapter folder (saved with save_pretrained)")
    ev.add_argument("--load-in-4bit", action="store_true", help="NF4, double-quantized base (QLoRA)")
    ev.add_argument("--task", required=True, choices=tasks.TASKS.names())
    ev.add_argument("--data", required=True, help="JSONL/JSON/Parquet file in the task's schema")
    ev.add_argument("--limit", type=int, help="evaluate a seeded random sample of N usable items")
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--max-new-tokens", type=int, help="default: the task's")
    ev.add_argument(
        "--dtype",
        choices=["bfloat16", "float16", "float32"],
        help="weights dtype (default: bfloat16 on a GPU, float32 on a CPU, where bf16 is slow)",
    )
    ev.add_argument("--root", default=".", help="folder whose runs/_models caches the built-in model")
    ev.add_argument("--out", required=True, help="JSON file for the metrics")
    ev.set_defaults(func=cmd_eval)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished steps are kept; rerun to continue", file=sys.stderr)
        return 130
    except Exception as exc:  # a failed step, a data problem or a busy study: its message, not a traceback
        from .data.datasets import DataError
        from .pipeline.execution import StepFailed
        from .pipeline.lock import StudyLocked
        from .pipeline.records import InconsistentRuns

        if isinstance(exc, StudyLocked):
            print(f"error: {exc}", file=sys.stderr)
            return 3
        if isinstance(exc, (StepFailed, DataError, InconsistentRuns)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
