#!/usr/bin/env python
"""LoRA vs QLoRA: weights footprint, memory and step time at Qwen3-0.6B's size, offline.

What it measures, for each method (`lora`: LoRA on the 16-bit base; `qlora`: the same LoRA
on an NF4, double-quantized 4-bit base):
  - the weights footprint in bytes after loading, after k-bit preparation and with the
    adapters (lorastudy.resources.weights_bytes: parameters, buffers and the quantization
    constants), and the measured bits per quantized weight;
  - memory after loading and after preparation, and the peak over a few training steps: on
    CUDA torch's allocated memory after each stage, and as the peak the GPU's used memory
    (sampled every 50 ms from an emptied allocator cache, as the study measures it: it holds
    bitsandbytes' paged optimizer state, which the allocator does not see) beside torch's
    allocated and reserved peaks; on a CPU the process's resident set (the peak is VmHWM,
    reset before the steps, or sampled every 50 ms where the kernel refuses the reset);
  - the time per optimizer step (forward, backward, optimizer step) and tokens per second,
    with the optimizer and mixed precision the study's Trainer uses (paged AdamW 32-bit and
    bf16 autocast on a GPU for the real study; lorastudy.train.resolve_optim/resolve_precision);
and compares them with theory: NF4 with double quantization stores 4.127 bits per weight
(QLoRA paper), so the 4-bit base should take quantized x 4.127/8 + non-quantized x 2 bytes.

How: the model is Qwen3-0.6B's exact architecture with random weights (seeded), built once
and saved as an ordinary safetensors folder (runs/benchmarks/<arch>-random/), so both
methods load it through the study's own path: lorastudy.train.prepare_model ->
lorastudy.models.load_model -> from_pretrained (with bitsandbytes NF4 for qlora), then
peft's prepare_model_for_kbit_training (qlora) and LoRA with the real study's settings
(params/qwen3-0.6b.yaml: rank 64, alpha 16, dropout 0.05, all linear layers). Training
inputs are random token ids (labels = inputs), so no tokenizer or data is needed. Each
method runs in its own fresh process, so its peak memory is its own.

Run it (CPU or CUDA; about 1.2 GB of disk for the cached model) on a study's params file, with
the same `-p` overrides as `lorastudy run`; the methods, rank, dtypes, k-bit preparation,
gradient checkpointing, batch size (train.batch_size) and sequence length (data.max_seq_len)
come from it:
    python benchmarks/memory.py params/qwen3-0.6b.yaml -p train.batch_size=2 -p data.max_seq_len=128 \
        --json runs/benchmarks/memory-qwen3-0.6b.json                       # make bench
    python benchmarks/memory.py params/smoke.yaml                          # a quick self-check
    python benchmarks/memory.py params/qwen3-0.6b.yaml -p methods=[qlora] -p quant.prepare_kbit=false
A hub model whose architecture the benchmark knows (ARCHS) is replaced by random weights in
that architecture, so no network is needed; a built-in or local model is used as it is.
On a CPU without AVX-512, torch's bfloat16 matmuls take a slow fallback and a step of the
0.6B model takes many minutes; benchmarks/README.md says more.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch  # noqa: E402  (after the sys.path fallback above)
from common import ROOT, load_average, load_study, log, study_parser, versions

from lorastudy import methods, resources  # noqa: E402
from lorastudy.models.loading import HUB_CONFIGS  # noqa: E402
from lorastudy.models.source import model_path  # noqa: E402
from lorastudy.study.load import load_config  # noqa: E402
from lorastudy.study.schema import StudyConfig, is_local  # noqa: E402
from lorastudy.train.loop import prepare_model, training_arguments  # noqa: E402
from lorastudy.train.precision import ran_in, resolve_optim, resolve_precision  # noqa: E402
from lorastudy.util.files import atomic_path, atomic_write_json  # noqa: E402

MB = resources.MB
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# QLoRA paper: 4-bit NF4 values, plus 8-bit absmax per 64 weights (8/64), plus a 32-bit
# second-level constant per 256 blocks (32/(64*256)): 4 + 0.125 + 0.002 = 4.127.
NF4_DOUBLE_QUANT_BITS = 4.127
# Bump when the way the random model is built changes, so a cached build is not reused.
BUILD_VERSION = 1
BUILD_MARKER = "benchmark-build.json"
RESULT_PREFIX = "BENCHMARK-RESULT "

# Hub models the benchmark can stand in for offline, with random weights.
ARCHS = HUB_CONFIGS


# ------------------------------------------------------------------------- the model


def random_model_dir(hub_id: str) -> Path:
    return ROOT / "runs" / "benchmarks" / f"{hub_id.split('/')[-1].lower()}-random"


def build_spec(hub_id: str, seed: int) -> dict:
    return {"version": BUILD_VERSION, "arch": hub_id, "config": ARCHS[hub_id], "seed": seed, "dtype": "bfloat16"}


def ensure_random_model(hub_id: str, model_dir: Path, seed: int) -> Path:
    """The random-weights stand-in for a hub model, built on first use and reused while its spec matches."""
    spec = build_spec(hub_id, seed)
    marker = model_dir / BUILD_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return model_dir
    if model_dir.exists() and not marker.is_file():
        # never replace a folder this script did not build (a real model, say)
        raise SystemExit(f"{model_dir} exists but was not built by this benchmark; move it away")
    from transformers import Qwen3Config, Qwen3ForCausalLM

    log(f"building {hub_id} with random weights (seed {seed}) in {model_dir} ...")
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(Qwen3Config(dtype="bfloat16", **ARCHS[hub_id])).to(torch.bfloat16)
    # atomic: an interrupted build never leaves a folder that looks finished
    with atomic_path(model_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / BUILD_MARKER).write_text(json.dumps(spec, indent=2) + "\n")
    del model
    gc.collect()
    log(f"built in {time.perf_counter() - start:.1f} s ({resources.folder_bytes(model_dir) / MB:,.1f} MB on disk)")
    return model_dir


def benchmark_model(cfg: StudyConfig, build: bool) -> Path:
    """The folder the methods load: the study's model, or a random stand-in for a known hub model."""
    name = cfg.model.name
    if name in ARCHS:
        directory = random_model_dir(name)
        return ensure_random_model(name, directory, cfg.seeds[0]) if build else directory
    if name.startswith("builtin:") or is_local(name):
        return Path(model_path(cfg.model, ROOT / "runs" / "_models", cfg.resolve, log))
    raise SystemExit(f"model.name: {name} is a hub model the benchmark cannot stand in for (known: {', '.join(ARCHS)})")


def architecture(model_dir: Path) -> dict:
    return json.loads((model_dir / "config.json").read_text())


def lora_params_expected(arch: dict, rank: int) -> int:
    """LoRA on all seven linear projections of every layer: rank x (in + out) each."""
    h, i = arch["hidden_size"], arch["intermediate_size"]
    head_dim = arch.get("head_dim") or h // arch["num_attention_heads"]
    q, kv = arch["num_attention_heads"] * head_dim, arch["num_key_value_heads"] * head_dim
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
    return rank * per_layer * arch["num_hidden_layers"]


# ------------------------------------------------------------------------- one method (worker)


def study_config(args: argparse.Namespace) -> StudyConfig:
    """The study's validated parameters, with this run's overrides."""
    return load_config(args.params, args.overrides, root=ROOT)


def autocast(precision: str):
    """Mixed precision as the study's Trainer uses it (bf16/fp16 on GPUs, none on a CPU)."""
    if precision in ("bf16", "fp16"):
        return torch.autocast(resources.device(), dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return nullcontext()


def train_step(model, optimizer, batch: torch.Tensor, precision: str) -> tuple[float, float]:
    """One optimizer step on `batch`; (seconds, loss)."""
    resources.synchronize()  # CUDA runs asynchronously: time the work, not its launch
    start = time.perf_counter()
    with autocast(precision):
        loss = model(input_ids=batch, labels=batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    resources.synchronize()
    return time.perf_counter() - start, loss.item()


def current_memory(stage: dict) -> int:
    """The memory figure a stage is compared by: CUDA allocated on a GPU, RSS on a CPU."""
    return stage.get("cuda_allocated_bytes", stage["rss_bytes"])


def cpu_capability() -> str | None:
    """torch's CPU instruction set (AVX2, AVX512, ...): without AVX-512, torch has no fast
    bfloat16/float16 matmul on a CPU and falls back to a slow, partly single-threaded one."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return None


def run_worker(args: argparse.Namespace) -> dict:
    """Load, prepare and train one method in this (fresh) process; its measurements."""
    cfg = study_config(args)
    method = methods.get(args.worker, cfg)
    model_dir = benchmark_model(cfg, build=False)
    torch.manual_seed(cfg.seeds[0])  # the same LoRA initialisation and inputs for every method
    # Import the libraries first, so the baseline is the process without weights.
    import peft  # noqa: F401
    import transformers  # noqa: F401

    baseline = resources.current_bytes()
    log(f"[{method.name}] loading {model_dir.name} ...")
    model, stages = prepare_model(cfg, method, str(model_dir))
    counts = resources.count_parameters(model)
    log(
        f"[{method.name}] loaded in {stages['load']['wall_s']:.1f} s; {counts['trainable_params']:,} trainable of "
        f"{counts['total_params']:,} parameters; {args.warmup_steps} warm-up + {args.steps} timed steps"
    )
    batch_shape = (cfg.train.batch_size, cfg.data.max_seq_len)
    steps = train_steps(method.settings(cfg), method, model, architecture(model_dir)["vocab_size"], batch_shape, args)
    prepare = stages.get("prepare")
    return {
        "method": method.name,
        "quantized": method.quantize,
        "device": resources.device_name(),
        "cpu_capability": cpu_capability(),
        "precision": resolve_precision(method.settings(cfg), method),
        "compute_precision": ran_in(method.settings(cfg), method),
        "optim": resolve_optim(cfg),
        "weights_bytes": stages["load"]["weights_bytes"],
        "weights_bytes_after_prepare": prepare["weights_bytes"] if prepare else None,
        "weights_bytes_with_adapters": stages["adapters"]["weights_bytes"],
        "memory_baseline_bytes": current_memory(baseline),
        "memory_after_load_bytes": current_memory(stages["load"]),
        "memory_after_prepare_bytes": current_memory(prepare) if prepare else None,
        "memory_before_train_bytes": current_memory(stages["adapters"]),
        "peak_load_bytes": resources.headline_peak_bytes(stages["load"]["peak"]),
        **counts,
        "quantized_params": stages["quantized"].get("quantized_params", 0),
        "bits_per_quantized_weight": stages["quantized"].get("bits_per_quantized_weight"),
        **steps,
        "load_seconds": stages["load"]["wall_s"],
        "stages": stages,
        "versions": versions(),
    }


def study_optimizer(cfg: StudyConfig, method, model):
    """The optimizer the study's Trainer builds for these settings (train.optim; `auto`: paged
    AdamW 32-bit on CUDA, torch's AdamW on a CPU), from transformers' own choice of class."""
    import tempfile

    from transformers import Trainer

    with tempfile.TemporaryDirectory() as scratch:
        args = training_arguments(cfg, method, cfg.seeds[0], scratch)
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    return optimizer_cls([{"params": trainable, "weight_decay": cfg.train.weight_decay}], **kwargs)


def train_steps(cfg: StudyConfig, method, model, vocab: int, batch_shape: tuple[int, int], args) -> dict:
    """Warm-up and timed optimizer steps on random token ids; their times, losses and peak memory."""
    name, precision = method.name, resolve_precision(cfg, method)
    optimizer = study_optimizer(cfg, method, model)
    batch = torch.randint(0, vocab, batch_shape, device=resources.device())
    model.train()
    load_before = load_average()
    times, losses = [], []
    # The peak covers the warm-up too: the first step allocates the optimizer's state and the
    # gradients, which every later step keeps.
    with resources.measure() as phase:
        for step in range(args.warmup_steps + args.steps):
            seconds, loss = train_step(model, optimizer, batch, precision)
            times.append(seconds)
            losses.append(loss)
            log(
                f"[{name}] step {step + 1}/{args.warmup_steps + args.steps}: {seconds:.2f} s, loss {loss:.4f}"
                + ("  (warm-up, untimed)" if step < args.warmup_steps else "")
            )
    timed = times[args.warmup_steps :]
    mean = statistics.fmean(timed)
    return {
        "optimizer_class": f"{type(optimizer).__module__}.{type(optimizer).__name__}",
        "memory_kind": phase.peak["memory_kind"],
        "peak_train_bytes": resources.headline_peak_bytes(phase.peak),
        "train_peak": phase.peak,
        "step_seconds": mean,
        "step_seconds_all": timed,
        "warmup_step_seconds": times[: args.warmup_steps],
        "tokens_per_second": batch_shape[0] * batch_shape[1] / mean,
        "losses": losses,
        # Other processes on the machine slow the steps (badly, when torch's threads fight them for cores).
        "load_average_before_train": load_before,
        "load_average_after_train": load_average(),
    }


# ------------------------------------------------------------------------- all methods (parent)


def worker_command(args: argparse.Namespace, method: str) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), str(args.params), "--worker", method]
    command += ["--steps", str(args.steps), "--warmup-steps", str(args.warmup_steps)]
    for item in args.param:
        command += ["-p", item]
    return command


def run_method(args: argparse.Namespace, method: str) -> dict:
    """Run one method in a fresh Python process (its messages pass through on stderr)."""
    start = time.perf_counter()
    done = subprocess.run(worker_command(args, method), stdout=subprocess.PIPE, text=True)
    wall_s = time.perf_counter() - start
    result = None
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
        elif line.strip():
            log(line)  # anything a library printed to stdout
    if done.returncode != 0 or result is None:
        code = done.returncode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return {"method": method, "error": f"worker {how} (its messages are above)", "worker_wall_s": wall_s}
    result["worker_wall_s"] = wall_s
    return result


def theory(results: dict, cfg: StudyConfig, arch: dict) -> dict:
    """Measured figures beside what the formats predict, per method, and each method's ratios
    to the first one."""
    dtype_bytes = DTYPE_BYTES[cfg.model.dtype]
    out: dict = {
        "nf4_double_quant_bits": NF4_DOUBLE_QUANT_BITS,
        "lora_params_expected": lora_params_expected(arch, cfg.lora.r),
    }
    ok = {m: r for m, r in results.items() if "error" not in r}
    for name, r in ok.items():
        base = r["total_params"] - r["trainable_params"]
        if not r["quantized"]:
            out[name] = {"weights_bytes_expected": base * dtype_bytes, "weights_bytes_measured": r["weights_bytes"]}
            continue
        quantized, other = r["quantized_params"], base - r["quantized_params"]
        out[name] = {
            "quantized_params": quantized,
            "non_quantized_params": other,
            "bits_per_quantized_weight_measured": r["bits_per_quantized_weight"],
            "weights_bytes_expected": quantized * NF4_DOUBLE_QUANT_BITS / 8 + other * dtype_bytes,
            "weights_bytes_measured": r["weights_bytes"],
            # prepare_model_for_kbit_training upcasts every non-quantized weight to fp32
            "prepared_weights_bytes_expected": quantized * NF4_DOUBLE_QUANT_BITS / 8 + other * 4,
            "prepared_weights_bytes_measured": r["weights_bytes_after_prepare"],
        }
    first, *others = list(ok) or [None]
    for name in others:
        a, b = ok[name], ok[first]
        out[f"{name}_over_{first}"] = {
            "weights_bytes": a["weights_bytes"] / b["weights_bytes"],
            "weights_bytes_expected": out[name]["weights_bytes_expected"] / out[first]["weights_bytes_expected"],
            "peak_train_bytes": a["peak_train_bytes"] / b["peak_train_bytes"],
            "step_seconds": a["step_seconds"] / b["step_seconds"],
        }
    return out


# ------------------------------------------------------------------------- the printed report


def _mb(value) -> str:
    return "n/a" if value is None else f"{value / MB:,.1f}"


def _int(value) -> str:
    return "n/a" if value is None else f"{value:,}"


def kind_of(report: dict) -> str:
    return next((r["memory_kind"] for r in report["methods"].values() if "memory_kind" in r), "cpu_rss")


RATIO_KEYS = {
    "weights_bytes",
    "weights_bytes_with_adapters",
    "memory_after_load_bytes",
    "memory_before_train_bytes",
    "peak_load_bytes",
    "peak_train_bytes",
    "step_seconds",
    "tokens_per_second",
}


def table_rows(kind: str) -> list[tuple[str, str, object]]:
    now, peak = ("CUDA allocated", "GPU used, sampled") if kind == "cuda" else ("RSS", "RSS")
    rows = [
        ("weights after load (MB)", "weights_bytes", _mb),
        ("weights after k-bit preparation (MB)", "weights_bytes_after_prepare", _mb),
        ("weights with adapters (MB)", "weights_bytes_with_adapters", _mb),
        (f"memory before load (libraries), {now} (MB)", "memory_baseline_bytes", _mb),
        (f"memory after load, {now} (MB)", "memory_after_load_bytes", _mb),
        (f"memory after k-bit preparation, {now} (MB)", "memory_after_prepare_bytes", _mb),
        (f"memory before training, {now} (MB)", "memory_before_train_bytes", _mb),
        (f"peak while loading, {peak} (MB)", "peak_load_bytes", _mb),
        (f"peak while training, {peak} (MB)", "peak_train_bytes", _mb),
        ("trainable parameters", "trainable_params", _int),
        ("total parameters (logical)", "total_params", _int),
        ("bits per quantized weight", "bits_per_quantized_weight", lambda v: "n/a" if v is None else f"{v:.4f}"),
        ("step time, mean (s)", "step_seconds", lambda v: f"{v:.3f}"),
        ("step times (s)", "step_seconds_all", lambda v: " ".join(f"{t:.2f}" for t in v)),
        ("tokens per second", "tokens_per_second", lambda v: f"{v:,.1f}"),
        ("final loss", "losses", lambda v: f"{v[-1]:.4f}"),
    ]
    if kind == "cuda":
        rows[9:9] = [
            ("peak while training, CUDA reserved (MB)", "train_peak", lambda v: _mb(v["peak_reserved_bytes"])),
            ("peak while training, CUDA allocated (MB)", "train_peak", lambda v: _mb(v["peak_allocated_bytes"])),
        ]
    rows += [("optimizer", "optim", str), ("compute precision", "compute_precision", str)]
    return rows


def format_table(report: dict) -> str:
    """One column per method, and each later method's ratio to the first."""
    results = report["methods"]
    names = list(results)
    first, others = names[0], names[1:]
    header = ["", *names] + [f"{m}/{first}" for m in others]
    lines = [header]
    for label, key, fmt in table_rows(kind_of(report)):
        cells = [label]
        for m in names:
            r = results[m]
            cells.append("failed" if "error" in r else fmt(r.get(key)) if key in r else "n/a")
        for m in others:
            a, b = results[m].get(key), results[first].get(key)
            cells.append(f"{a / b:.2f}" if key in RATIO_KEYS and a and b else "")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]

    def line(row: list[str]) -> str:  # labels left-aligned, figures right-aligned
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])

    return "\n".join(line(row) for row in lines)


def _pct(measured: float, expected: float) -> str:
    return f"{100 * (measured / expected - 1):+.2f}%"


def format_theory(report: dict) -> str:
    t, s = report["theory"], report["settings"]
    byte_size = DTYPE_BYTES[s["dtype"]]
    lines = [f"Theory (QLoRA paper: NF4 + double quantization = {NF4_DOUBLE_QUANT_BITS} bits per weight)"]
    for name in report["methods"]:
        m = t.get(name)
        if m is None:
            continue
        if "quantized_params" not in m:
            lines.append(
                f"  {name}: {s['dtype']} base weights measured {_mb(m['weights_bytes_measured'])} MB vs expected "
                f"{_mb(m['weights_bytes_expected'])} MB = all parameters x {byte_size} bytes "
                f"({_pct(m['weights_bytes_measured'], m['weights_bytes_expected'])})"
            )
            continue
        q, o = m["quantized_params"], m["non_quantized_params"]
        bits = m["bits_per_quantized_weight_measured"]
        lines += [
            f"  {name}: bits per quantized weight measured {bits:.4f} vs {NF4_DOUBLE_QUANT_BITS} "
            f"({_pct(bits, NF4_DOUBLE_QUANT_BITS)})",
            f"  {name}: 4-bit base weights measured {_mb(m['weights_bytes_measured'])} MB vs expected "
            f"{_mb(m['weights_bytes_expected'])} MB = {q:,} x {NF4_DOUBLE_QUANT_BITS}/8 + {o:,} x {byte_size} bytes "
            f"({_pct(m['weights_bytes_measured'], m['weights_bytes_expected'])})",
        ]
        if m["prepared_weights_bytes_measured"] is not None:
            lines.append(
                f"  {name}: after k-bit preparation measured {_mb(m['prepared_weights_bytes_measured'])} MB vs "
                f"expected {_mb(m['prepared_weights_bytes_expected'])} MB = {q:,} x {NF4_DOUBLE_QUANT_BITS}/8 "
                f"+ {o:,} x 4 bytes (non-quantized weights upcast to fp32; "
                f"{_pct(m['prepared_weights_bytes_measured'], m['prepared_weights_bytes_expected'])})"
            )
    trained = next((r["trainable_params"] for r in report["methods"].values() if "trainable_params" in r), None)
    if trained is not None:
        lines.append(
            f"  LoRA parameters: measured {trained:,} vs expected {t['lora_params_expected']:,} "
            f"(rank {s['rank']} x (in + out) of every linear projection)"
        )
    for key, r in t.items():
        if "_over_" in key:
            lines.append(
                f"  {key.replace('_over_', '/')}: weights {r['weights_bytes']:.3f} (expected "
                f"{r['weights_bytes_expected']:.3f}), training peak {r['peak_train_bytes']:.3f}, "
                f"step time {r['step_seconds']:.2f}"
            )
    return "\n".join(lines)


def format_report(report: dict) -> str:
    s = report["settings"]
    device = next((r["device"] for r in report["methods"].values() if "device" in r), "unknown device")
    prep = "with" if s["prepare_kbit"] else "without"
    head = (
        f"{' vs '.join(report['methods'])} on {s['model']}, {device}\n"
        f"batch {s['batch_size']} x {s['seq_len']} tokens, rank {s['rank']}, {s['dtype']} base, quantized bases "
        f"{prep} k-bit preparation, gradient checkpointing {'on' if s['gradient_checkpointing'] else 'off'}, "
        f"{s['warmup_steps']} warm-up + {s['steps']} timed steps; MB = 2^20 bytes"
    )
    if report["load_average_at_start"] is not None:
        head += (
            f"\nload average (1 min) at start {report['load_average_at_start'][0]:.2f} on "
            f"{report['cpu_count']} cores: other work on the machine slows the steps"
        )
    capability = next((r.get("cpu_capability") for r in report["methods"].values() if "device" in r), None)
    slow_cpu = capability and not capability.startswith(("AVX512", "SVE"))
    if kind_of(report) == "cpu_rss" and s["dtype"] != "float32" and slow_cpu:
        head += (
            f"\nnote: torch's CPU capability is {capability}: without AVX-512 its {s['dtype']} matmuls take a "
            f"slow fallback, so step times here say little about a machine that has it"
        )
    return "\n\n".join([head, format_table(report), format_theory(report)])


# ------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps (default 3)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed steps before them (default 1)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # one method, in a child process
    args = parser.parse_args(argv)
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    if args.steps < 1:
        problems.append("--steps: must be at least 1")
    if args.warmup_steps < 0:
        problems.append("--warmup-steps: must be zero or more")
    if cfg is not None:
        args.methods = [m for m in cfg.methods if methods.get(m, cfg).trains]
        if not args.methods:
            problems.append("methods: the study trains no method, so there is nothing to benchmark")
    if problems:
        parser.error("; ".join(problems))
    return args


def settings(cfg: StudyConfig, args: argparse.Namespace) -> dict:
    return {
        "params": str(args.params),
        "overrides": args.overrides,
        "model": cfg.model.name,
        "methods": args.methods,
        "dtype": cfg.model.dtype,
        "rank": cfg.lora.r,
        "lora": {
            "r": cfg.lora.r,
            "alpha": cfg.lora.alpha,
            "dropout": cfg.lora.dropout,
            "target_modules": cfg.lora.target_modules,
        },
        "prepare_kbit": cfg.quant.prepare_kbit,
        "gradient_checkpointing": cfg.train.gradient_checkpointing,
        "batch_size": cfg.train.batch_size,
        "seq_len": cfg.data.max_seq_len,
        "steps": args.steps,
        "warmup_steps": args.warmup_steps,
        "seed": cfg.seeds[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(RESULT_PREFIX + json.dumps(run_worker(args), default=str), flush=True)
        return 0
    start = time.perf_counter()
    load_at_start = load_average()
    cfg = study_config(args)
    model_dir = benchmark_model(cfg, build=True)
    results = {method: run_method(args, method) for method in args.methods}
    report = {
        "benchmark": "memory",
        "settings": settings(cfg, args),
        "arch_config": architecture(model_dir),
        "command": shlex.join([sys.executable, *sys.argv]),
        "methods": results,
        "theory": theory(results, cfg, architecture(model_dir)),
        "load_average_at_start": load_at_start,
        "cpu_count": os.cpu_count(),
        "wall_s": time.perf_counter() - start,
    }
    print(format_report(report), flush=True)
    if args.json:
        atomic_write_json(args.json, report)
        log(f"wrote {args.json}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
