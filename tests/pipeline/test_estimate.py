"""`lorastudy check` prints the study's plan with an estimate, and refuses a hub model on a
machine without CUDA unless asked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorastudy.pipeline import estimate
from lorastudy.study.load import load_config

ROOT = Path(__file__).resolve().parents[2]


def lorastudy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorastudy", *args], capture_output=True, text=True, timeout=120)


def test_the_parameter_count_comes_from_the_config_without_loading_weights(tiny_model):
    from transformers import AutoModelForCausalLM

    cfg = load_config(ROOT / "params" / "smoke.yaml")
    counted = estimate.parameters(cfg, str(tiny_model))
    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters())
    assert counted == pytest.approx(real, rel=0.01)  # only the norms' few weights are left out
    assert estimate.parameters(cfg, "Qwen/Qwen3-0.6B") == pytest.approx(596e6, rel=0.01)  # known offline
    assert estimate.parameters(cfg, "someone/not-here") is None  # not guessed


def test_the_plan_counts_each_steps_items_and_token_upper_bounds():
    cfg = load_config(ROOT / "params" / "smoke.yaml")
    rows = {r["step"]: r for r in estimate.plan(cfg, 1_000_000, estimate.CPU)}
    assert list(rows) == [
        "01_data",
        "01_quantization",
        "02_train-lora",
        "02_train-qlora",
        "03_evaluate-base",
        "03_evaluate-lora",
        "03_evaluate-qlora",
        "04_report",
    ]
    assert (
        rows["02_train-lora"]["tokens"]
        == cfg.data.train_samples * cfg.train.epochs * cfg.data.max_seq_len
        == 640 * 2 * 192
    )
    assert rows["03_evaluate-base"]["items"] == 300
    # QLoRA's steps are counted slower (dequantization), the base's and LoRA's alike.
    assert rows["02_train-qlora"]["seconds"] > rows["02_train-lora"]["seconds"]
    assert rows["03_evaluate-base"]["seconds"] == rows["03_evaluate-lora"]["seconds"]
    assert all(r["seconds"] is None for r in estimate.plan(cfg, None, estimate.CPU) if r["step"].startswith("02"))


def test_full_fine_tuning_is_planned_with_weight_gradients_and_cross_evaluations_train_nothing():
    cfg = load_config(ROOT / "params" / "smoke-methods.yaml")
    rows = {r["step"]: r for r in estimate.plan(cfg, 1_000_000, estimate.CPU)}
    # Backward through frozen weights (4 x parameters a token) plus weight gradients (2 more).
    lora, full = (rows[f"02_train-{m}"]["seconds"] - estimate.CPU.startup_s for m in ("lora", "full"))
    assert full == pytest.approx(1.5 * lora)
    assert "02_train-qlora-on-16bit" not in rows and "03_evaluate-qlora-on-16bit" in rows
    assert "02_train-qlora-r8" in rows and "01_quantization" in rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_check_prints_the_plan_and_a_hub_model_needs_allow_cpu_here():
    refused = lorastudy("check", str(ROOT / "params" / "qwen3-0.6b.yaml"))
    assert refused.returncode == 2 and "02_train-qlora" in refused.stdout and "total: about" in refused.stdout
    assert "this machine has no CUDA device" in refused.stderr and "--allow-cpu" in refused.stderr
    allowed = lorastudy("check", str(ROOT / "params" / "qwen3-0.6b.yaml"), "--allow-cpu")
    assert allowed.returncode == 0 and allowed.stdout.rstrip().endswith("s)")
    assert "qlora vs lora, openmath exact_match within \u00b10.020 (assumed before the first run)" in allowed.stdout
    run = lorastudy("run", str(ROOT / "params" / "qwen3-0.6b.yaml"), "--root", "/nonexistent-root")
    assert run.returncode == 2 and "--allow-cpu" in run.stderr  # refused before any step starts


def test_the_latency_passes_are_planned_at_the_fixed_length_and_a_finished_runs_latency_replaces_them(tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", root=tmp_path)
    longer = load_config(ROOT / "params" / "smoke.yaml", ["eval.latency_tokens=512"], root=tmp_path)

    def evaluation(c, measured=None):
        return {r["step"]: r["seconds"] for r in estimate.plan(c, 100_000_000, estimate.CPU, measured)}

    assumed = evaluation(cfg)
    # 480 more decoding steps for each of the 8 items and the warm-up (at the fixed length), at the assumed TPOT.
    _, tpot = estimate.assumed_latency(100_000_000, estimate.CPU)
    assert evaluation(longer)["03_evaluate-base"] - assumed["03_evaluate-base"] == pytest.approx(9 * 480 * tpot)
    results = tmp_path / "runs" / "smoke" / "results"
    results.mkdir(parents=True)
    (results / "resources.csv").write_text(
        "method,phase,memory_kind,latency_ms_p50,ttft_ms_p50,tpot_ms_p50,latency_tokens\n"
        "lora,train,cpu_rss,,,,\n"
        "lora,eval,cpu_rss,500.0,40.0,10.0,16\n"
        "qlora,eval,cuda,500.0,40.0,10.0,16\n"  # another kind of device: not this machine's figures
        "base,eval,cpu_rss,,,,\n"  # recorded before TTFT and TPOT
    )
    measured = estimate.measured_latency(cfg, estimate.CPU)
    assert list(measured) == ["lora"]
    planned = evaluation(cfg, measured)
    tasks_only = assumed["03_evaluate-lora"] - estimate._latency_seconds(cfg, 100_000_000, estimate.CPU, None)
    # Whole answers for 8 items, then TTFT and 31 steps of TPOT at the study's 32 tokens for them and a warm-up.
    assert planned["03_evaluate-lora"] - tasks_only == pytest.approx((8 * 500.0 + 9 * (40.0 + 10.0 * 31)) / 1000)
    assert planned["03_evaluate-base"] == assumed["03_evaluate-base"]
    line = estimate.latency_line(cfg, estimate.CPU, 100_000_000, measured)
    assert "exactly 32 tokens" in line and "lora TTFT 40.0 ms, TPOT 10.00 ms a token (at 16 tokens)" in line
    assert "assumed on CPU" in estimate.latency_line(cfg, estimate.CPU, 100_000_000, {})
