"""The plan `lorastudy check` prints: each step, the items and tokens it handles, and a rough
estimate of its duration on the device this machine has, before anything is loaded.

The estimate is arithmetic on upper bounds, not a measurement: every training example at
data.max_seq_len tokens, every generation batch running to its token limit (a batch lasts as
long as its longest output), a fixed cost per step for starting a kernel and loading the
model. Compute is 2 x parameters FLOPs per token forward and 4 x backward through frozen
weights (6 x with gradient checkpointing), at an effective rate per device (below); a
generation step also costs a fixed overhead (kernel launches, Python). Expect the real time
within about a factor of two, usually below the estimate, since outputs and examples are
mostly shorter than their limits. Each profile says where its figures come from. The latency
passes at batch size 1 are the exception where the study has finished a run on this kind of
device: they are then the TTFT, TPOT and per-answer latency it measured (resources.csv).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import methods, tasks
from ..data.datasets import eval_size
from ..models.loading import HUB_CONFIGS
from ..study.paths import StudyPaths
from ..study.runs import runs_of
from ..study.schema import StudyConfig


@dataclass(frozen=True)
class Device:
    name: str
    flops: float  # effective FLOP/s a study's forward and backward passes reach
    step_overhead_s: float  # per generation step, beyond its FLOPs
    startup_s: float  # per notebook step: kernel start, imports, model load
    source: str


# Measured on this project's CPU machines (2 cores, AVX2, float32; smoke and SmolLM2 studies).
CPU = Device("CPU", 8e10, 0.03, 15.0, "measured: SmolLM2-135M training and generation on 2 cores, float32")


# One H100/H200-class GPU, bf16: about 15% of its dense peak for a 0.6B model under the
# Trainer and transformers' generate (small matrices; launch-bound decoding).
CUDA = Device("CUDA GPU", 1.5e14, 0.025, 25.0, "assumed: 15% of an H100's 990 TFLOP/s bf16; 25 ms per decoding step")


ARC_ROW_TOKENS = 80  # an ARC question and one choice, in a Qwen- or Llama-sized vocabulary


# A quantized base dequantizes its weights at every matmul: Google Vertex AI's guidance puts
# LoRA about 66% faster than QLoRA, so its steps are counted 1.66 times as long.
QUANTIZED_SLOWDOWN = 1.66


PROMPT_TOKENS = 200  # a generation prompt with its chat template (SQuAD's passages are the longest)


# Storing one weight in all five formats (01_quantization): on the CPU measured on SmolLM2-135M's
# 106M linear weights (149 s on 2 shared cores); on a GPU assumed a hundred times faster.
QUANTIZE_S_PER_WEIGHT = {"CPU": 1.4e-6, "CUDA GPU": 1.4e-8}


def parameters(cfg: StudyConfig, path: str) -> int | None:
    """The model's parameter count from its config.json (no weights are read); None if unknown."""
    try:
        if Path(path).is_dir():
            c = json.loads((Path(path) / "config.json").read_text())
        elif path in HUB_CONFIGS:
            c = HUB_CONFIGS[path]
        else:  # a hub model downloaded before is in the local cache; no request is made
            from transformers import AutoConfig

            c = AutoConfig.from_pretrained(path, revision=cfg.model.revision, local_files_only=True).to_dict()
    except Exception:  # neither here nor known: the plan is printed without durations
        return None
    h, layers, inter, vocab = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
    heads = c["num_attention_heads"]
    head_dim = c.get("head_dim") or h // heads
    kv = c.get("num_key_value_heads") or heads
    attention = 2 * h * heads * head_dim + 2 * h * kv * head_dim
    embedding = vocab * h * (1 if c.get("tie_word_embeddings", True) else 2)
    return embedding + layers * (attention + 3 * h * inter)


def plan(cfg: StudyConfig, n_params: int | None, device: Device, measured: dict[str, dict] | None = None) -> list[dict]:
    """One row per step: what it does, its items and tokens (upper bounds), estimated seconds.
    `measured`: per method, the latency a finished run measured here (`measured_latency`), which
    replaces the assumed duration of that method's latency passes."""
    rows = [{"step": "01_data", "work": "load, clean, split", "items": None, "tokens": None, "seconds": 5.0}]
    if any(methods.get(m, cfg).quantize for m in cfg.methods):
        seconds = None if n_params is None else 5.0 + n_params * QUANTIZE_S_PER_WEIGHT[device.name]
        rows.append({"step": "01_quantization", "work": "5 formats x linear layers", "items": None, "tokens": None})
        rows[-1]["seconds"] = seconds
    train_tokens = cfg.data.train_samples * cfg.train.epochs * cfg.data.max_seq_len
    for run in runs_of(cfg):
        method = methods.get(run.method, cfg)
        if method.trains:
            # Backward through frozen weights is 2 x parameters FLOPs a token; weight gradients
            # (full fine-tuning) and recomputed forwards (checkpointing) add 2 each.
            per_token = 4 + 2 * cfg.train.gradient_checkpointing + 2 * method.trains_every_weight
            seconds = _time(n_params, per_token * train_tokens * _slowdown(run.method, cfg), device)
            rows.append(
                {
                    "step": f"02_train-{run.name}",
                    "work": f"{cfg.data.train_samples:,} examples x {cfg.train.epochs:g} epochs",
                    "items": cfg.data.train_samples,
                    "tokens": int(train_tokens),
                    "seconds": seconds,
                }
            )
    evaluation = _evaluation(cfg, n_params, device)
    for run in runs_of(cfg):
        seconds = evaluation["seconds"] and evaluation["seconds"] * _slowdown(run.method, cfg)
        latency = _latency_seconds(cfg, n_params, device, (measured or {}).get(run.method))
        if seconds is not None and latency is not None:
            seconds += latency if run.method in (measured or {}) else latency * _slowdown(run.method, cfg)
        rows.append({"step": f"03_evaluate-{run.name}", **evaluation, "seconds": seconds})
    rows.append({"step": "04_report", "work": "tables, charts, render", "items": None, "tokens": None, "seconds": 15.0})
    for row in rows:
        if row["seconds"] is not None:
            row["seconds"] += device.startup_s
    return rows


def _evaluation(cfg: StudyConfig, n_params: int | None, device: Device) -> dict:
    items, tokens, flops, decode_steps = 0, 0, 0.0, 0
    for t in cfg.tasks:
        task, n = tasks.get(t.name, cfg), eval_size(cfg, t.name) or 0
        items += n
        if task.kind != "generate":  # choices, or a reference reply, scored by likelihood
            tokens += n * 4 * ARC_ROW_TOKENS
            flops += 2 * n * 4 * ARC_ROW_TOKENS
            continue
        limit = t.max_new_tokens or task.max_new_tokens
        batches = math.ceil(n / cfg.eval.generation_batch_size)
        tokens += n * limit
        flops += 2 * (batches * cfg.eval.generation_batch_size * limit + n * PROMPT_TOKENS)
        decode_steps += batches * limit
    seconds = None
    if n_params is not None:
        seconds = flops * n_params / device.flops + decode_steps * device.step_overhead_s
    return {"work": f"{len(cfg.tasks)} tasks + latency", "items": items, "tokens": tokens, "seconds": seconds}


def _latency_seconds(cfg: StudyConfig, n_params: int | None, device: Device, measured: dict | None) -> float | None:
    """The two latency passes at batch size 1 (evaluate/latency.py), each over eval.latency_items
    items, whole answers (up to the task's limit) and exactly eval.latency_tokens tokens, after a
    warm-up item at that fixed length. From a finished run's p50s where `measured`, else assumed."""
    task = next((t for t in cfg.tasks if t.name == cfg.eval.latency_task), None)
    if task is None:
        return 0.0
    items, fixed = cfg.eval.latency_items, cfg.eval.latency_tokens
    if measured is not None:
        fixed_s = (measured["ttft_ms_p50"] + measured["tpot_ms_p50"] * (fixed - 1)) / 1000.0
        return items * measured["latency_ms_p50"] / 1000.0 + (items + 1) * fixed_s
    if n_params is None:
        return None
    ttft, tpot = assumed_latency(n_params, device)
    limit = task.max_new_tokens or tasks.get(task.name, cfg).max_new_tokens
    return items * (ttft + tpot * (limit - 1)) + (items + 1) * (ttft + tpot * (fixed - 1))


def assumed_latency(n_params: int, device: Device) -> tuple[float, float]:
    """Seconds to the first token of a PROMPT_TOKENS prompt and per token after it, at batch 1."""
    tpot = 2 * n_params / device.flops + device.step_overhead_s
    return 2 * n_params * PROMPT_TOKENS / device.flops + device.step_overhead_s, tpot


def measured_latency(cfg: StudyConfig, device: Device) -> dict[str, dict]:
    """Per method, the latency figures (resources.csv's evaluation row) the study's last finished
    run measured on this kind of device; empty before one, or where it measured no TTFT and TPOT."""
    path = StudyPaths(cfg.resolve("."), cfg.study).results / "resources.csv"
    if not path.is_file():
        return {}
    r = pd.read_csv(path)
    if "ttft_ms_p50" not in r.columns:
        return {}
    kind = "cuda" if device.name == CUDA.name else "cpu_rss"
    r = r[(r.phase == "eval") & (r.memory_kind == kind)].dropna(subset=list(MEASURED_COLUMNS))
    studied = {run.method for run in runs_of(cfg)}
    return {row["method"]: row.to_dict() for _, row in r.iterrows() if row["method"] in studied}


MEASURED_COLUMNS = ("latency_ms_p50", "ttft_ms_p50", "tpot_ms_p50", "latency_tokens")


def latency_line(cfg: StudyConfig, device: Device, n_params: int | None, measured: dict[str, dict]) -> str:
    """What `lorastudy check` says of latency: the figures the estimate uses for its passes."""
    e = cfg.eval
    head = (
        f"latency at batch 1 ({e.latency_items} {e.latency_task} items: whole answers, then exactly "
        f"{e.latency_tokens} tokens each for TTFT and TPOT): "
    )
    if measured:
        path = StudyPaths(cfg.resolve("."), cfg.study).results / "resources.csv"
        figures = "; ".join(
            f"{m} TTFT {v['ttft_ms_p50']:,.1f} ms, TPOT {v['tpot_ms_p50']:,.2f} ms a token "
            f"(at {int(v['latency_tokens'])} tokens)"
            for m, v in measured.items()
        )
        return head + f"measured (p50) in {path}: {figures}"
    if n_params is None:
        return head + "no estimate (model size unknown)"
    ttft, tpot = assumed_latency(n_params, device)
    return (
        head + f"assumed on {device.name} before a finished run: TTFT about {ttft * 1000:,.1f} ms for a "
        f"{PROMPT_TOKENS}-token prompt, TPOT about {tpot * 1000:,.1f} ms a token"
    )


def _slowdown(method: str, cfg: StudyConfig) -> float:
    return QUANTIZED_SLOWDOWN if methods.get(method, cfg).quantize else 1.0


def _time(n_params: int | None, flops_per_param: float, device: Device) -> float | None:
    return None if n_params is None else n_params * flops_per_param / device.flops


def format_plan(rows: list[dict], device: Device, n_params: int | None) -> str:
    lines = [
        f"plan on {device.name} ({device.source}); model: "
        + (
            f"{n_params / 1e6:,.1f}M parameters"
            if n_params
            else "size unknown (not here, not in the cache), no durations"
        )
    ]
    lines.append(f"  {'step':28} {'work':36} {'items':>8} {'tokens (at most)':>17} {'estimate':>10}")
    for r in rows:
        items = f"{r['items']:,}" if r["items"] is not None else ""
        tokens = f"{r['tokens']:,}" if r["tokens"] is not None else ""
        seconds = _duration(r["seconds"]) if r["seconds"] is not None else "?"
        lines.append(f"  {r['step']:28} {r['work']:36} {items:>8} {tokens:>17} {seconds:>10}")
    known = [r["seconds"] for r in rows if r["seconds"] is not None]
    if n_params is not None:
        lines.append(
            f"  total: about {_duration(sum(known))} (a rough estimate from upper bounds; see lorastudy.estimate)"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.1f} min"
