#!/usr/bin/env python
"""LoRA vs QLoRA: weights footprint, memory and step time at Qwen3-0.6B's size, offline.

What it measures, for each method (`lora`: LoRA on the 16-bit base; `qlora`: the same LoRA
on an NF4, double-quantized 4-bit base):
  - the weights footprint in bytes after loading, after k-bit preparation and with the
    adapters (lorastudy.resources.weights_bytes: parameters, buffers and the quantization
    constants), and the measured bits per quantized weight;
  - memory after loading and after preparation, and the peak over a few training steps:
    on CUDA torch's allocated and reserved memory (the headline peak is reserved), on a CPU
    the process's resident set (the peak is VmHWM, reset before the steps);
  - the time per optimizer step (forward, backward, AdamW step) and tokens per second;
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

Run it (CPU or CUDA; about 1.2 GB of disk for the cached model):
    python benchmarks/memory.py --arch qwen3-0.6b --json runs/benchmarks/memory-qwen3-0.6b.json
    python benchmarks/memory.py --arch tiny                    # a quick self-check
    python benchmarks/memory.py --methods qlora --no-prepare-kbit
`--help` lists the other options (steps, batch size, sequence length, rank, dtype,
gradient checkpointing). On a CPU without AVX-512, torch's bfloat16 matmuls take a slow
fallback and a step of the 0.6B model takes many minutes; benchmarks/README.md says more.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import lorastudy  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "lib"))

import torch  # noqa: E402  (after the sys.path fallback above)

from lorastudy import resources  # noqa: E402
from lorastudy.config import load_config  # noqa: E402
from lorastudy.io import atomic_path, atomic_write_json  # noqa: E402
from lorastudy.models import TINY_ARCH, TINY_VOCAB  # noqa: E402
from lorastudy.train import prepare_model, resolve_precision  # noqa: E402

MB = resources.MB
PARAMS_FILE = ROOT / "params" / "qwen3-0.6b.yaml"
METHODS = ("lora", "qlora")
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# QLoRA paper: 4-bit NF4 values, plus 8-bit absmax per 64 weights (8/64), plus a 32-bit
# second-level constant per 256 blocks (32/(64*256)): 4 + 0.125 + 0.002 = 4.127.
NF4_DOUBLE_QUANT_BITS = 4.127
# Bump when the way the random model is built changes, so a cached build is not reused.
BUILD_VERSION = 1
BUILD_MARKER = "benchmark-build.json"
RESULT_PREFIX = "BENCHMARK-RESULT "

ARCHS = {
    # Qwen/Qwen3-0.6B's config.json, less the tokenizer-specific token ids.
    "qwen3-0.6b": dict(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        tie_word_embeddings=True,
        rope_theta=1_000_000.0,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
    ),
    # The smoke study's tiny Qwen3 shape: seconds, for checking the script itself.
    "tiny": dict(vocab_size=TINY_VOCAB, **TINY_ARCH),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------- the model


def default_model_dir(arch: str) -> Path:
    return ROOT / "runs" / "benchmarks" / f"{arch}-random"


def build_spec(arch: str, seed: int) -> dict:
    return {"version": BUILD_VERSION, "arch": arch, "config": ARCHS[arch], "seed": seed, "dtype": "bfloat16"}


def ensure_model(arch: str, model_dir: Path, seed: int) -> Path:
    """The random-weights model folder, built on first use and reused while its spec matches."""
    spec = build_spec(arch, seed)
    marker = model_dir / BUILD_MARKER
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return model_dir
    if model_dir.exists() and not marker.is_file():
        # never replace a folder this script did not build (a real model, say)
        raise SystemExit(f"{model_dir} exists but was not built by this benchmark; choose another --model-dir")
    from transformers import Qwen3Config, Qwen3ForCausalLM

    log(f"building {arch} with random weights (seed {seed}) in {model_dir} ...")
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(Qwen3Config(dtype="bfloat16", **ARCHS[arch])).to(torch.bfloat16)
    # atomic: an interrupted build never leaves a folder that looks finished
    with atomic_path(model_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / BUILD_MARKER).write_text(json.dumps(spec, indent=2) + "\n")
    del model
    gc.collect()
    log(f"built in {time.perf_counter() - start:.1f} s ({resources.folder_bytes(model_dir) / MB:,.1f} MB on disk)")
    return model_dir


def lora_params_expected(arch: dict, rank: int) -> int:
    """LoRA on all seven linear projections of every layer: rank x (in + out) each."""
    h, i = arch["hidden_size"], arch["intermediate_size"]
    q, kv = arch["num_attention_heads"] * arch["head_dim"], arch["num_key_value_heads"] * arch["head_dim"]
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
    return rank * per_layer * arch["num_hidden_layers"]


# ------------------------------------------------------------------------- one method (worker)


def study_config(args: argparse.Namespace):
    """The real study's parameters, pointed at the random model, with this run's options."""
    return load_config(
        PARAMS_FILE,
        {
            "model.name": str(args.model_dir),
            "model.dtype": args.dtype,
            "quant.compute_dtype": args.dtype,
            "quant.prepare_kbit": not args.no_prepare_kbit,
            "lora.r": args.rank,
            "train.gradient_checkpointing": args.gradient_checkpointing,
            "train.batch_size": args.batch_size,
        },
        root=ROOT,
    )


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


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_capability() -> str | None:
    """torch's CPU instruction set (AVX2, AVX512, ...): without AVX-512, torch has no fast
    bfloat16/float16 matmul on a CPU and falls back to a slow, partly single-threaded one."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        return None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for package in ("torch", "transformers", "peft", "bitsandbytes", "accelerate"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = None
    return out


def run_worker(args: argparse.Namespace) -> dict:
    """Load, prepare and train one method in this (fresh) process; its measurements."""
    method = args.worker
    cfg = study_config(args)
    torch.manual_seed(args.seed)  # the same LoRA initialisation and inputs for both methods
    # Import the libraries first, so the baseline is the process without weights.
    import peft  # noqa: F401
    import transformers  # noqa: F401

    baseline = resources.current_bytes()
    log(f"[{method}] loading {args.model_dir.name} ...")
    model, stages = prepare_model(cfg, method, str(args.model_dir))
    counts = resources.count_parameters(model)
    precision = resolve_precision(cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay)
    vocab = ARCHS[args.arch]["vocab_size"]
    batch = torch.randint(0, vocab, (args.batch_size, args.seq_len), device=resources.device())
    log(
        f"[{method}] loaded in {stages['load']['wall_s']:.1f} s; {counts['trainable_params']:,} trainable of "
        f"{counts['total_params']:,} parameters; {args.warmup_steps} warm-up + {args.steps} timed steps"
    )

    model.train()
    load_before = load_average()
    times, losses = [], []
    # The peak covers the warm-up too: the first step allocates AdamW's state and the
    # gradients, which every later step keeps.
    with resources.measure() as phase:
        for step in range(args.warmup_steps + args.steps):
            seconds, loss = train_step(model, optimizer, batch, precision)
            times.append(seconds)
            losses.append(loss)
            log(
                f"[{method}] step {step + 1}/{args.warmup_steps + args.steps}: {seconds:.2f} s, loss {loss:.4f}"
                + ("  (warm-up, untimed)" if step < args.warmup_steps else "")
            )
    timed = times[args.warmup_steps :]
    mean = statistics.fmean(timed)
    prepare = stages.get("prepare")
    return {
        "method": method,
        "device": resources.device_name(),
        "cpu_capability": cpu_capability(),
        "memory_kind": phase.peak["memory_kind"],
        "precision": precision,
        "weights_bytes": stages["load"]["weights_bytes"],
        "weights_bytes_after_prepare": prepare["weights_bytes"] if prepare else None,
        "weights_bytes_with_adapters": stages["adapters"]["weights_bytes"],
        "memory_baseline_bytes": current_memory(baseline),
        "memory_after_load_bytes": current_memory(stages["load"]),
        "memory_after_prepare_bytes": current_memory(prepare) if prepare else None,
        "memory_before_train_bytes": current_memory(stages["adapters"]),
        "peak_load_bytes": resources.headline_peak_bytes(stages["load"]["peak"]),
        "peak_train_bytes": resources.headline_peak_bytes(phase.peak),
        "train_peak": phase.peak,
        **counts,
        "quantized_params": stages["quantized"].get("quantized_params", 0),
        "bits_per_quantized_weight": stages["quantized"].get("bits_per_quantized_weight"),
        "step_seconds": mean,
        "step_seconds_all": timed,
        "warmup_step_seconds": times[: args.warmup_steps],
        "tokens_per_second": args.batch_size * args.seq_len / mean,
        "losses": losses,
        "load_seconds": stages["load"]["wall_s"],
        # Other processes on the machine slow the steps (badly, when torch's threads fight them for cores).
        "load_average_before_train": load_before,
        "load_average_after_train": load_average(),
        "stages": stages,
        "versions": versions(),
    }


# ------------------------------------------------------------------------- all methods (parent)


def worker_command(args: argparse.Namespace, method: str) -> list[str]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        method,
        "--arch",
        args.arch,
        "--model-dir",
        str(args.model_dir),
        "--seed",
        str(args.seed),
        "--steps",
        str(args.steps),
        "--warmup-steps",
        str(args.warmup_steps),
        "--batch-size",
        str(args.batch_size),
        "--seq-len",
        str(args.seq_len),
        "--rank",
        str(args.rank),
        "--dtype",
        args.dtype,
    ]
    if args.no_prepare_kbit:
        command.append("--no-prepare-kbit")
    if args.gradient_checkpointing:
        command.append("--gradient-checkpointing")
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


def theory(results: dict, args: argparse.Namespace) -> dict:
    """Measured figures beside what the formats predict."""
    out: dict = {
        "nf4_double_quant_bits": NF4_DOUBLE_QUANT_BITS,
        "lora_params_expected": lora_params_expected(ARCHS[args.arch], args.rank),
    }
    ok = {m: r for m, r in results.items() if "error" not in r}
    dtype_bytes = DTYPE_BYTES[args.dtype]
    if "lora" in ok:
        lora = ok["lora"]
        base = lora["total_params"] - lora["trainable_params"]
        out["lora_weights_bytes_expected"] = base * dtype_bytes
        out["lora_weights_bytes_measured"] = lora["weights_bytes"]
    if "qlora" in ok:
        qlora = ok["qlora"]
        quantized = qlora["quantized_params"]
        other = qlora["total_params"] - qlora["trainable_params"] - quantized
        out.update(
            {
                "quantized_params": quantized,
                "non_quantized_params": other,
                "bits_per_quantized_weight_measured": qlora["bits_per_quantized_weight"],
                "qlora_weights_bytes_expected": quantized * NF4_DOUBLE_QUANT_BITS / 8 + other * dtype_bytes,
                "qlora_weights_bytes_measured": qlora["weights_bytes"],
                # prepare_model_for_kbit_training upcasts every non-quantized weight to fp32
                "qlora_prepared_weights_bytes_expected": quantized * NF4_DOUBLE_QUANT_BITS / 8 + other * 4,
                "qlora_prepared_weights_bytes_measured": qlora["weights_bytes_after_prepare"],
            }
        )
    if "lora" in ok and "qlora" in ok:
        lora, qlora = ok["lora"], ok["qlora"]
        out["qlora_over_lora"] = {
            "weights_bytes": qlora["weights_bytes"] / lora["weights_bytes"],
            "weights_bytes_expected": out["qlora_weights_bytes_expected"] / out["lora_weights_bytes_expected"],
            "peak_train_bytes": qlora["peak_train_bytes"] / lora["peak_train_bytes"],
            "step_seconds": qlora["step_seconds"] / lora["step_seconds"],
        }
    return out


# ------------------------------------------------------------------------- the printed report


def _mb(value) -> str:
    return "n/a" if value is None else f"{value / MB:,.1f}"


def _int(value) -> str:
    return "n/a" if value is None else f"{value:,}"


def _ratio(results: dict, key: str) -> str:
    lora, qlora = results.get("lora", {}), results.get("qlora", {})
    if lora.get(key) and qlora.get(key):
        return f"{qlora[key] / lora[key]:.2f}"
    return ""


def kind_of(report: dict) -> str:
    return next((r["memory_kind"] for r in report["methods"].values() if "memory_kind" in r), "cpu_rss")


def format_table(report: dict) -> str:
    results = report["methods"]
    methods = list(results)
    kind = kind_of(report)
    now, peak = ("CUDA allocated", "CUDA reserved") if kind == "cuda" else ("RSS", "RSS")
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
        rows.insert(
            9, ("peak while training, CUDA allocated (MB)", "train_peak", lambda v: _mb(v["peak_allocated_bytes"]))
        )
    ratio_keys = {
        "weights_bytes",
        "weights_bytes_with_adapters",
        "memory_after_load_bytes",
        "memory_before_train_bytes",
        "peak_load_bytes",
        "peak_train_bytes",
        "step_seconds",
        "tokens_per_second",
    }
    header = ["", *methods] + (["qlora/lora"] if {"lora", "qlora"} <= set(methods) else [])
    lines = [header]
    for label, key, fmt in rows:
        cells = [label]
        for m in methods:
            r = results[m]
            cells.append("failed" if "error" in r else fmt(r.get(key)) if key in r else "n/a")
        if len(header) > len(methods) + 1:
            cells.append(_ratio(results, key) if key in ratio_keys else "")
        lines.append(cells)
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]

    def line(row: list[str]) -> str:  # labels left-aligned, figures right-aligned
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)])

    return "\n".join(line(row) for row in lines)


def format_theory(report: dict) -> str:
    t, s = report["theory"], report["settings"]
    pct = lambda measured, expected: f"{100 * (measured / expected - 1):+.2f}%"  # noqa: E731
    byte_size = DTYPE_BYTES[s["dtype"]]
    lines = [f"Theory (QLoRA paper: NF4 + double quantization = {NF4_DOUBLE_QUANT_BITS} bits per weight)"]
    if "qlora_weights_bytes_expected" in t:
        q, o = t["quantized_params"], t["non_quantized_params"]
        lines += [
            f"  bits per quantized weight: measured {t['bits_per_quantized_weight_measured']:.4f} vs "
            f"{NF4_DOUBLE_QUANT_BITS} ({pct(t['bits_per_quantized_weight_measured'], NF4_DOUBLE_QUANT_BITS)})",
            f"  4-bit base weights: measured {_mb(t['qlora_weights_bytes_measured'])} MB vs expected "
            f"{_mb(t['qlora_weights_bytes_expected'])} MB = {q:,} x {NF4_DOUBLE_QUANT_BITS}/8 "
            f"+ {o:,} x {byte_size} bytes "
            f"({pct(t['qlora_weights_bytes_measured'], t['qlora_weights_bytes_expected'])})",
        ]
        if t["qlora_prepared_weights_bytes_measured"] is not None:
            lines.append(
                f"  after k-bit preparation: measured {_mb(t['qlora_prepared_weights_bytes_measured'])} MB vs expected "
                f"{_mb(t['qlora_prepared_weights_bytes_expected'])} MB = {q:,} x {NF4_DOUBLE_QUANT_BITS}/8 "
                f"+ {o:,} x 4 bytes "
                f"(non-quantized weights upcast to fp32; "
                f"{pct(t['qlora_prepared_weights_bytes_measured'], t['qlora_prepared_weights_bytes_expected'])})"
            )
    if "lora_weights_bytes_expected" in t:
        lines.append(
            f"  {s['dtype']} base weights: measured {_mb(t['lora_weights_bytes_measured'])} MB vs expected "
            f"{_mb(t['lora_weights_bytes_expected'])} MB = all parameters x {byte_size} bytes "
            f"({pct(t['lora_weights_bytes_measured'], t['lora_weights_bytes_expected'])})"
        )
    trained = next((r["trainable_params"] for r in report["methods"].values() if "trainable_params" in r), None)
    if trained is not None:
        lines.append(
            f"  LoRA parameters: measured {trained:,} vs expected {t['lora_params_expected']:,} "
            f"(rank {s['rank']} x (in + out) of every linear projection)"
        )
    if "qlora_over_lora" in t:
        r = t["qlora_over_lora"]
        lines.append(
            f"  qlora/lora: weights {r['weights_bytes']:.3f} (expected {r['weights_bytes_expected']:.3f}), "
            f"training peak {r['peak_train_bytes']:.3f}, step time {r['step_seconds']:.2f}"
        )
    return "\n".join(lines)


def format_report(report: dict) -> str:
    s = report["settings"]
    device = next((r["device"] for r in report["methods"].values() if "device" in r), "unknown device")
    prep = "without" if s["no_prepare_kbit"] else "with"
    head = (
        f"LoRA vs QLoRA on {s['arch']} (random weights), {device}\n"
        f"batch {s['batch_size']} x {s['seq_len']} tokens, rank {s['rank']}, {s['dtype']} base, QLoRA {prep} "
        f"k-bit preparation, gradient checkpointing {'on' if s['gradient_checkpointing'] else 'off'}, "
        f"{s['warmup_steps']} warm-up + {s['steps']} timed steps; MB = 2^20 bytes"
    )
    if report["load_average_at_start"] is not None:
        head += (
            f"\nload average (1 min) at start {report['load_average_at_start'][0]:.2f} on "
            f"{report['cpu_count']} cores: other work on the machine slows the steps"
        )
    capability = next((r.get("cpu_capability") for r in report["methods"].values() if "device" in r), None)
    if (
        kind_of(report) == "cpu_rss"
        and s["dtype"] != "float32"
        and capability
        and not capability.startswith(("AVX512", "SVE"))
    ):
        head += (
            f"\nnote: torch's CPU capability is {capability}: without AVX-512 its {s['dtype']} matmuls take a "
            f"slow fallback, so step times here say little about a machine that has it"
        )
    return "\n\n".join([head, format_table(report), format_theory(report)])


# ------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--arch",
        choices=sorted(ARCHS),
        default="qwen3-0.6b",
        help="qwen3-0.6b: Qwen3-0.6B's architecture; tiny: a quick self-check",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: lora, qlora (default: both)")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps (default 3)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed steps before them (default 1)")
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per step (default 2)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per sequence (default 128)")
    parser.add_argument("--rank", type=int, default=64, help="LoRA rank (default 64, the real study's)")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPE_BYTES),
        default="bfloat16",
        help="dtype of the 16-bit base and QLoRA's compute dtype (default bfloat16)",
    )
    parser.add_argument(
        "--no-prepare-kbit",
        action="store_true",
        help="QLoRA without peft's prepare_model_for_kbit_training (which upcasts the "
        "non-quantized weights, the tied embedding above all, to fp32)",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="recompute activations in the backward pass (off by default)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights, LoRA and inputs")
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="where the random model is cached (default runs/benchmarks/<arch>-random)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures to this JSON file")
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)  # one method, in a child process
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    problems = [f"--methods: unknown method {m!r} (expected lora or qlora)" for m in args.methods if m not in METHODS]
    if not args.methods:
        problems.append("--methods: name at least one of lora, qlora")
    for name in ("steps", "batch_size", "seq_len", "rank"):
        if getattr(args, name) < 1:
            problems.append(f"--{name.replace('_', '-')}: must be at least 1")
    if args.warmup_steps < 0:
        problems.append("--warmup-steps: must be zero or more")
    if args.seq_len > ARCHS[args.arch]["max_position_embeddings"]:
        problems.append(f"--seq-len: {args.arch} takes at most {ARCHS[args.arch]['max_position_embeddings']} tokens")
    if problems:
        parser.error("; ".join(problems))
    if args.model_dir is None:
        args.model_dir = default_model_dir(args.arch)
    args.model_dir = args.model_dir.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print(RESULT_PREFIX + json.dumps(run_worker(args), default=str), flush=True)
        return 0
    start = time.perf_counter()
    load_at_start = load_average()
    ensure_model(args.arch, args.model_dir, args.seed)
    results = {method: run_method(args, method) for method in args.methods}
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("worker", "json")}
    lora = study_config(args).lora
    settings["lora"] = {
        "r": lora.r,
        "alpha": lora.alpha,
        "dropout": lora.dropout,
        "target_modules": lora.target_modules,
    }
    report = {
        "benchmark": "memory",
        "settings": settings,
        "arch_config": ARCHS[args.arch],
        "command": shlex.join([sys.executable, *sys.argv]),
        "methods": results,
        "theory": theory(results, args),
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
