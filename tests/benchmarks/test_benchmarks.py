"""The benchmark scripts run on the smoke study's model and report what they promise; their
figures are for the closing notes, not asserted here (timing depends on the machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def bench(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{script}.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / f"{script}.py"),
            str(ROOT / "params" / "smoke.yaml"),
            *args,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_eval_throughput_compares_batched_with_one_at_a_time(tiny_model, tmp_path):
    report = bench("eval_throughput", "--items", "4", "--arc-items", "4", "--batch-size", "4", tmp_path=tmp_path)
    gen, arc = report["generation"], report["arc"]
    assert gen["all_identical"] and gen["items"] == 4 and gen["one_at_a_time_s"] > 0 and gen["batched_s"] > 0
    assert arc["all_identical"] and arc["choices"] == 16 and arc["max_abs_loglikelihood_difference"] < 1e-3


def test_memory_benchmark_takes_a_params_file(tiny_model, tmp_path):
    # The optimizer the study runs with on CUDA (paged AdamW from bitsandbytes, which runs on a CPU too).
    args = ["--steps", "1", "--warmup-steps", "0", "-p", "train.batch_size=2", "-p", "train.optim=paged_adamw_32bit"]
    report = bench("memory", *args, tmp_path=tmp_path)
    assert set(report["methods"]) == {"lora", "qlora"} and report["settings"]["batch_size"] == 2
    qlora = report["methods"]["qlora"]
    assert qlora["optim"] == "paged_adamw_32bit" and qlora["optimizer_class"] == "bitsandbytes.optim.adamw.AdamW"
    assert qlora["bits_per_quantized_weight"] == pytest.approx(4.127, abs=0.01)
    assert report["theory"]["lora_params_expected"] == qlora["trainable_params"]
    assert report["theory"]["qlora_over_lora"]["weights_bytes"] < 0.5


def test_a_benchmark_refuses_bad_parameters_before_loading_anything(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "memory.py"),
            str(ROOT / "params" / "smoke.yaml"),
            "-p",
            "lora.r=0",
            "--steps",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "lora.r: must be positive" in done.stderr and "--steps: must be at least 1" in done.stderr


def test_the_gpu_check_rehearses_on_a_cpu_and_leaves_only_a_few_plain_files(tiny_model, tmp_path):
    """The script that will meet the GPU runs here first, at small sizes: the same steps and the
    same output, which a device call must be able to bring back (at most 8 plain files, no
    folders, no links)."""
    out = tmp_path / "out"
    env = {**os.environ, "GPU_CHECK_CPU": "1", "PYTHON": sys.executable, "GPU_CHECK_WORK": str(tmp_path / "work")}
    done = subprocess.run(
        [str(ROOT / "benchmarks" / "gpu_check.sh"), str(out)], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    entries = list(out.iterdir())
    assert len(entries) <= 8 and all(e.is_file() and not e.is_symlink() for e in entries)
    assert {e.name for e in entries} == {"gpu_check.json", "versions.txt", "smoke.log", "memory.log", "generation.log"}
    report = json.loads((out / "gpu_check.json").read_text())
    figures = report["figures"]
    assert figures["smoke_wall_s"] > 0 and {r["step"] for r in report["smoke"]["steps"]} >= {"01_data", "04_report"}
    assert figures["memory"]["qlora"]["peak_train_mb"] > 0 and figures["memory"]["qlora_over_lora"]["step_s"] > 0
    assert figures["memory"]["qlora"]["optimizer"] == "bitsandbytes.optim.adamw.AdamW"  # the study's, on CUDA
    assert set(figures["generation"]) == {"16-bit", "nf4 4-bit"}
