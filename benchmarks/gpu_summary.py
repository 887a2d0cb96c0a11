#!/usr/bin/env python
"""gpu_check.sh's last step: one JSON file of what the check measured, with the figures a
closing note gives first (QLoRA against LoRA: peak training memory and step time; generation
tokens per second of each base; the smoke study's wall time), and the same headline printed.

    python benchmarks/gpu_summary.py WORK_DIR OUT_DIR SMOKE_SECONDS STARTED_EPOCH
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

MB = 2**20


def device() -> str:
    try:
        query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        return subprocess.run(query, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "no nvidia-smi (a CPU rehearsal)"


def memory_figures(memory: dict) -> dict:
    """Each method's peak and step time, and QLoRA's ratio to LoRA's."""
    methods = {name: r for name, r in memory["methods"].items() if "error" not in r}
    figures = {
        name: {
            "peak_train_mb": round(r["peak_train_bytes"] / MB, 1),
            "memory_kind": r["memory_kind"],
            "peak_reserved_mb": round(r["train_peak"].get("peak_reserved_bytes", 0) / MB, 1) or None,
            "peak_allocated_mb": round(r["train_peak"].get("peak_allocated_bytes", 0) / MB, 1) or None,
            "weights_mb": round(r["weights_bytes"] / MB, 1),
            "step_s": round(r["step_seconds"], 4),
            "tokens_per_s": round(r["tokens_per_second"], 1),
            "optimizer": r["optimizer_class"],
            "compute_precision": r["compute_precision"],
        }
        for name, r in methods.items()
    }
    if {"lora", "qlora"} <= set(figures):
        q, lo = figures["qlora"], figures["lora"]
        figures["qlora_over_lora"] = {
            "peak_train": round(q["peak_train_mb"] / lo["peak_train_mb"], 3),
            "step_s": round(q["step_s"] / lo["step_s"], 3),
        }
    failed = {name: r["error"] for name, r in memory["methods"].items() if "error" in r}
    return {**figures, **({"failed": failed} if failed else {})}


def generation_figures(generation: dict) -> dict:
    return {
        base: {f"batch {r['batch_size']}": {"tokens_per_s": round(r["tokens_per_s"], 1)} for r in rows}
        for base, rows in generation["bases"].items()
    }


def main(argv: list[str]) -> int:
    work, out, smoke_s, started = Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3])
    results = work / "smoke" / "runs" / "smoke" / "results"
    memory = json.loads((work / "memory.json").read_text())
    generation = json.loads((work / "generation.json").read_text())
    report = {
        "device": device(),
        "figures": {
            "smoke_wall_s": smoke_s,
            "memory": memory_figures(memory),
            "generation": generation_figures(generation),
        },
        "smoke": {
            "steps": pd.read_csv(results / "steps.csv").to_dict("records"),
            "metrics": pd.read_csv(results / "metrics.csv").to_dict("records"),
            "resources": pd.read_csv(results / "resources.csv").to_dict("records"),
        },
        "memory": memory,
        "generation": generation,
        "wall_s": round(time.time() - started, 1),
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report["figures"], indent=2))
    print(f"gpu_check: wrote {out / 'gpu_check.json'} in {report['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
