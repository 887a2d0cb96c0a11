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
    # The study-time benchmark runs a whole study twice: a bad parameter stops it before either.
    script = [sys.executable, str(ROOT / "benchmarks" / "study_time.py"), str(ROOT / "params" / "smoke.yaml")]
    done = subprocess.run([*script, "-p", "train.epochs=0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "train.epochs" in done.stderr and "peer:" not in done.stderr


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


@pytest.mark.bench
def test_trl_peer_trains_the_same_loss_curve_as_lorastudy(tiny_model, tmp_path):
    """TRL's SFTTrainer and lorastudy's training path, on the same model, examples and settings:
    every figure is there and positive, and the loss curves are the same within the tolerance."""
    report = bench("peer_trl", "--steps", "4", "--warmup-steps", "1", tmp_path=tmp_path)
    assert set(report["methods"]) == {"lora", "qlora"} and report["settings"]["optimizer_steps"] == 4
    for method, figures in report["methods"].items():
        ours, theirs = figures["lorastudy"], figures["trl"]
        for side in (ours, theirs):
            assert side["optimizer_steps"] == side["steps"] == 4 and side["timed_steps"] == 3, method
            assert side["median_step_s"] > 0 and side["total_s"] > 0 and side["tokens_per_s"] > 0, method
            assert side["median_step_cpu_s"] > 0 and side["total_cpu_s"] > 0, method
            assert len(side["losses"]) == 4 and all(loss > 0 for loss in side["losses"]), method
        assert ours["tokens"] == theirs["tokens"] > 0  # the same examples, batch for batch
        assert figures["median_step_ratio"] > 0 and figures["total_ratio"] > 0
        differences = [abs(a - b) for a, b in zip(ours["losses"], theirs["losses"])]
        assert figures["max_loss_difference"] == max(differences) <= report["tolerance"], method
        assert figures["losses_agree"], method
    # TRL casts a quantized model's adapter to bfloat16; the benchmark gives it lorastudy's float32 weights back.
    assert report["methods"]["qlora"]["trl"]["recast_to_study_dtype"] > 0
    assert report["methods"]["lora"]["trl"]["recast_to_study_dtype"] == 0


@pytest.mark.bench
def test_generation_peer_gives_the_harness_the_same_outputs(tiny_model, tmp_path):
    """lm-evaluation-harness's generate_until and lorastudy's generation on the same prompts: both
    times are there and positive, and every output is the same text."""
    report = bench("peer_generation", "--items", "8", tmp_path=tmp_path)
    assert report["items"] == 8 and report["batch_size"] == 32 and report["max_new_tokens"] == 48
    assert report["lorastudy_generation_s"] > 0 and report["harness_generation_s"] > 0
    assert report["lorastudy_generation_cpu_s"] > 0 and report["harness_generation_cpu_s"] > 0
    assert report["time_ratio"] == pytest.approx(report["lorastudy_generation_s"] / report["harness_generation_s"])
    assert report["generated_tokens"] > 8
    assert report["identical_outputs"] == 8 and report["all_identical"] and report["differing"] == []
