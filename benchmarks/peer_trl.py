#!/usr/bin/env python
"""LoRA and QLoRA training: lorastudy's training path against TRL's SFTTrainer, on the same inputs.

For each method (`lora`: LoRA on the 16-bit base; `qlora`: the same LoRA on an NF4,
double-quantized 4-bit base) both trainers run the same number of optimizer steps on the
same model, examples, batch size, sequence length, learning rate and schedule, LoRA settings
and seed:
  - lorastudy: its training path as the 02_train notebook calls it, lorastudy.train.train
    (Trainer, lorastudy's collator and callbacks, the run's files written to a scratch study);
  - TRL: trl.SFTTrainer given what lorastudy.train.train builds before its Trainer, through
    lorastudy's own functions: the model from lorastudy.train.loop.prepare_model (a fresh
    one, built after the same set_seed, so the LoRA weights start equal), the tokenized
    examples from lorastudy.train.loop.build_examples (a `labels` column with -100 on the
    prompt, so the loss is on the answer tokens only, as with TRL's completion-only loss; TRL
    uses a `labels` column as it is), and lorastudy's TrainingArguments
    (lorastudy.train.arguments.training_arguments) as the SFTConfig, with packing and
    padding-free off. TRL pads on the right as lorastudy does; its loss is its fused LM head's
    (log-probabilities of the answer tokens, in chunks, without the full logits), the sum over
    the batch's answer tokens divided by their number, which is what transformers' loss is.
    One adjustment: SFTTrainer's constructor casts a quantized model's trainable weights to
    bfloat16 (the QLoRA paper's recipe); the benchmark puts lorastudy's float32 adapter
    weights back right after it, so both train the same adapter in the study's compute dtype.
The data come from lorastudy's data step (lorastudy.data.prepare) in a scratch study folder.
The same step timer is installed in both Trainers (through transformers' default
callbacks): a step's seconds run from the end of the step before (or the start of
training) to its own end, so each step includes its logging. Reported per method and trainer:
the median step after --warmup-steps (its wall time, the target's measure, and the process's
CPU time, which other work on a shared machine changes less), the total training time, tokens
(non-padding inputs) per second and the loss at every step; then lorastudy/TRL ratios (target:
at most 1.0) and the largest loss difference over the steps (the curves agree within
--tolerance; the script exits 1 if they do not). Needs `pip install -e .[bench]` (trl).

    python benchmarks/peer_trl.py params/smollm2-135m.yaml --json runs/benchmarks/peer-trl-smollm2.json
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, emit, load_average, load_study, log, needs_bench_extra, study_parser, versions

from lorastudy import data, methods, models, resources  # noqa: E402
from lorastudy.data.datasets import load_train, run_settings  # noqa: E402
from lorastudy.models.source import model_path  # noqa: E402
from lorastudy.study.paths import StudyPaths  # noqa: E402
from lorastudy.study.runs import find_run  # noqa: E402
from lorastudy.train.arguments import training_arguments  # noqa: E402
from lorastudy.train.loop import build_examples, prepare_model, train  # noqa: E402

TARGET_RATIO = 1.0
# The largest loss difference at any step for the curves to count as the same. Measured: at most
# 1.1e-5 over SmolLM2's 16 steps and 5e-7 over the tiny model's (float32; the two losses sum the
# same terms in another order); TRL's bfloat16 QLoRA adapter, left as TRL casts it, moves the
# tiny model's curve by 3e-4 within 4 steps, which this tolerance tells apart.
TOLERANCE = 1e-4
# What both trainers are given besides the study's settings: a loss at every step, nothing else
# during training (no validation, checkpoints or trackers).
FIXED = [
    "train.logging_steps=1",
    "train.eval_steps=0",
    "data.validation_samples=0",
    "train.save_steps=0",
    "train.report_to=[none]",
]


class StepTimer:
    """A Trainer callback that records, for each training, when it began and ended, when each
    optimizer step ended, the loss logged at each step and the input tokens seen. Installed in
    transformers' default callbacks, so every Trainer made meanwhile gets it, whoever makes it."""

    def __init__(self):
        from transformers import TrainerCallback

        self.runs: list[dict] = []
        timer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                now = (time.perf_counter(), time.process_time())
                timer.runs.append({"begin": now, "step_ends": [], "losses": {}})

            def on_step_end(self, args, state, control, **kwargs):
                resources.synchronize()
                timer.runs[-1]["step_ends"].append((time.perf_counter(), time.process_time()))

            def on_log(self, args, state, control, logs=None, **kwargs):
                if logs and "loss" in logs:
                    timer.runs[-1]["losses"][state.global_step] = float(logs["loss"])

            def on_train_end(self, args, state, control, **kwargs):
                now = (time.perf_counter(), time.process_time())
                timer.runs[-1].update(end=now, tokens=int(state.num_input_tokens_seen))

        self.callback = Callback()

    def __enter__(self):
        from transformers import trainer

        trainer.DEFAULT_CALLBACKS.append(self.callback)
        return self

    def __exit__(self, *exc):
        from transformers import trainer

        trainer.DEFAULT_CALLBACKS.remove(self.callback)

    def figures(self, warmup: int) -> dict:
        """The last training's figures."""
        run = self.runs[-1]
        ends = run["step_ends"]
        step_s, cpu_s = ([b[k] - a[k] for a, b in zip([run["begin"], *ends], ends)] for k in (0, 1))
        total = run["end"][0] - run["begin"][0]
        return {
            "steps": len(step_s),
            "median_step_s": statistics.median(step_s[warmup:]),
            "median_step_cpu_s": statistics.median(cpu_s[warmup:]),
            "timed_steps": len(step_s[warmup:]),
            "total_s": total,
            "total_cpu_s": run["end"][1] - run["begin"][1],
            "tokens": run["tokens"],
            "tokens_per_s": run["tokens"] / total,
            "step_s": step_s,
            "losses": [run["losses"].get(step) for step in range(1, len(step_s) + 1)],
        }


def lorastudy_training(cfg, method: str, paths: StudyPaths) -> dict:
    """lorastudy's own training path, as the 02_train notebook runs it."""
    record = train(cfg, find_run(cfg, method, cfg.seeds[0]), paths, log=log)
    return {"optimizer_steps": record["optimizer_steps"], "tokens_seen": record["tokens_seen"]}


def trl_training(cfg, method_name: str, paths: StudyPaths, folder: Path) -> dict:
    """TRL's SFTTrainer on what lorastudy.train.train prepares before its Trainer: the settings,
    seed, model and tokenized examples, each from lorastudy's function for it."""
    from datasets import Dataset
    from transformers import PrinterCallback, set_seed
    from trl import SFTConfig, SFTTrainer

    method = methods.get(method_name, cfg)
    run = find_run(cfg, method_name, cfg.seeds[0])
    cfg = run_settings(cfg, method, paths.data)
    set_seed(run.seed)
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    tokenizer = models.load_tokenizer(path, cfg.model)
    examples, _ = build_examples(load_train(paths.data), tokenizer, cfg.data.max_seq_len, cfg.data.train_task)
    model, _ = prepare_model(cfg, method, path)
    arguments = training_arguments(cfg, method, run.seed, str(folder / run.name)).to_dict()
    args = SFTConfig(**arguments, packing=False, padding_free=False, max_length=cfg.data.max_seq_len)
    adapter = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(examples), processing_class=tokenizer)
    recast = 0
    for name, param in model.named_parameters():
        if name in adapter and param.dtype != adapter[name].dtype:  # TRL's bfloat16 cast of a quantized model's
            param.data, recast = adapter[name], recast + 1  # adapter: lorastudy's float32 weights back
    trainer.remove_callback(PrinterCallback)  # it prints every log to stdout; lorastudy removes it too
    result = trainer.train()
    return {"optimizer_steps": int(result.global_step), "recast_to_study_dtype": recast}


def compare(ours: dict, theirs: dict, tolerance: float) -> dict:
    pairs = list(zip(ours["losses"], theirs["losses"]))
    complete = len(ours["losses"]) == len(theirs["losses"]) and all(a is not None and b is not None for a, b in pairs)
    diffs = [abs(a - b) for a, b in pairs if a is not None and b is not None]
    largest = max(diffs) if diffs else float("inf")
    return {
        "median_step_ratio": ours["median_step_s"] / theirs["median_step_s"],
        "total_ratio": ours["total_s"] / theirs["total_s"],
        "tokens_per_s_ratio": ours["tokens_per_s"] / theirs["tokens_per_s"],
        "median_step_cpu_ratio": ours["median_step_cpu_s"] / theirs["median_step_cpu_s"],
        "meets_target": ours["median_step_s"] / theirs["median_step_s"] <= TARGET_RATIO,
        "max_loss_difference": largest,
        "max_loss_difference_step": diffs.index(largest) + 1 if diffs else None,
        "losses_agree": complete and largest <= tolerance,
    }


def side_by_side(method: str, ours: dict, theirs: dict, verdict: dict) -> None:
    log(f"\n{method}: step   lorastudy loss    TRL loss    |diff|   lorastudy s   TRL s")
    for k, (a, b) in enumerate(zip(ours["losses"], theirs["losses"])):
        diff = f"{abs(a - b):9.2e}" if a is not None and b is not None else "      n/a"
        log(f"{k + 1:>10}   {a:14.6f}  {b:10.6f}  {diff}   {ours['step_s'][k]:11.3f}  {theirs['step_s'][k]:6.3f}")
    for label, key in (
        ("median step (s)", "median_step_s"),
        ("  its CPU time", "median_step_cpu_s"),
        ("total (s)", "total_s"),
        ("tokens/s", "tokens_per_s"),
    ):
        log(
            f"  {label:<16} lorastudy {ours[key]:10.3f}   TRL {theirs[key]:10.3f}   ratio {ours[key] / theirs[key]:.3f}"
        )
    log(
        f"  largest loss difference {verdict['max_loss_difference']:.2e} (step {verdict['max_loss_difference_step']}): "
        + ("within" if verdict["losses_agree"] else "OUTSIDE")
        + " the tolerance"
    )


def benchmark(cfg, names: list[str], warmup: int, tolerance: float, folder: Path) -> dict:
    paths = StudyPaths(folder, cfg.study)
    paths.models.parent.mkdir(parents=True)
    os.symlink(ROOT / "runs" / "_models", paths.models)  # the built offline models, not rebuilt
    path = model_path(cfg.model, paths.models, cfg.resolve, log)
    resolved = models.identity(cfg.model, path)
    data.prepare(cfg, paths.data, log=log, model=resolved, tokenizer=models.load_tokenizer(path, cfg.model))
    out = {}
    with StepTimer() as timer:
        for name in names:
            log(f"{name}: lorastudy's training path ...")
            ours = {**lorastudy_training(cfg, name, paths), **timer.figures(warmup)}
            log(f"{name}: TRL's SFTTrainer ...")
            theirs = {**trl_training(cfg, name, paths, folder / "trl"), **timer.figures(warmup)}
            verdict = compare(ours, theirs, tolerance)
            side_by_side(name, ours, theirs, verdict)
            out[name] = {"lorastudy": ours, "trl": theirs, **verdict}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per training (default 16)")
    parser.add_argument("--warmup-steps", type=int, default=2, help="steps left out of the median (default 2)")
    parser.add_argument("--methods", default="lora,qlora", help="methods to train (default lora,qlora)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help=f"loss difference (default {TOLERANCE})")
    args = parser.parse_args(argv)
    args.param = [*args.param, *FIXED, f"train.max_steps={args.steps}"]
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.steps <= args.warmup_steps or args.warmup_steps < 0:
        problems.append("--steps: must be more than --warmup-steps, which must not be negative")
    if cfg is not None:
        problems += [f"--methods: {m} trains no adapter" for m in names if not methods.get(m, cfg).trains]
    needs_bench_extra("trl", "TRL", problems)
    if problems:
        parser.error("; ".join(problems))
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="lorastudy-peer-trl-") as folder:
        results = benchmark(cfg, names, args.warmup_steps, args.tolerance, Path(folder))
    settings = cfg.train
    emit(
        {
            "benchmark": "peer_trl",
            "model": cfg.model.name,
            "dtype": cfg.model.dtype,
            "device": resources.device_name(),
            "settings": {
                "optimizer_steps": args.steps,
                "warmup_steps": args.warmup_steps,
                "batch_size": settings.batch_size,
                "grad_accum": settings.grad_accum,
                "max_seq_len": cfg.data.max_seq_len,
                "learning_rate": settings.learning_rate,
                "lora": {"r": cfg.lora.r, "alpha": cfg.lora.alpha, "dropout": cfg.lora.dropout},
                "quant": {"quant_type": cfg.quant.quant_type, "double_quant": cfg.quant.double_quant},
            },
            "methods": results,
            "target_ratio": TARGET_RATIO,
            "tolerance": args.tolerance,
            "meets_target": all(r["meets_target"] for r in results.values()),
            "losses_agree": all(r["losses_agree"] for r in results.values()),
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "versions": versions("torch", "transformers", "peft", "bitsandbytes", "trl"),
        },
        args.json,
    )
    return 0 if all(r["losses_agree"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
