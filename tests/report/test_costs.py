"""The latency figures from the evaluation records to resources.csv, the report's cost table, its
latency chart and the evaluation step's summary, without a model: TTFT and TPOT at their
generation length, and "not measured" in words where a run did not measure them."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

from lorastudy import results
from lorastudy.report import charts
from lorastudy.report.costs import resources_table
from lorastudy.report.step_summaries import eval_summary
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import runs_of

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[2]
MB = 2**20


def fixed_length(ttft: list[float], tpot: list[float], tokens: int = 32) -> dict:
    return {
        "tokens": tokens,
        "ttft_ms": ttft,
        "tpot_ms": tpot,
        "total_ms": [a + b * (tokens - 1) for a, b in zip(ttft, tpot)],
        "generated": [tokens] * len(ttft),
        "ttft_p50_ms": sorted(ttft)[len(ttft) // 2],
        "ttft_p95_ms": max(ttft),
        "tpot_p50_ms": sorted(tpot)[len(tpot) // 2],
        "tpot_p95_ms": max(tpot),
    }


def eval_record(run: str, ms: list[float], fixed: dict | None) -> dict:
    latency = {"task": "openmath", "items": len(ms), "ms": ms, "p50_ms": sorted(ms)[len(ms) // 2], "p95_ms": max(ms)}
    latency.update({"generated_tokens": 40, "generated_tokens_per_s": 1000.0 * 40 / sum(ms)})
    if fixed is not None:
        latency["fixed_length"] = fixed
    task = {"n": 10, "wall_s": 2.0, "items_per_s": 5.0, "peak_memory_mb": 900.0, "metrics": {}}
    return {
        "run": run,
        "adapter_params": 0,
        "fine_tuned_params": 0,
        "total_params": 1_000_000,
        "peak_memory_mb": 900.0,
        "memory_kind": "cpu_rss",
        "wall_s": 4.0,
        "weights_bytes": 4 * MB,
        "peak": {},
        "tasks": {"openmath": task},
        "latency": latency,
    }


def train_record() -> dict:
    stage = {"weights_bytes": 4 * MB, "rss_bytes": 800 * MB}
    return {
        **{"trainable_params": 5000, "total_params": 1_005_000, "peak_memory_mb": 1200.0, "memory_kind": "cpu_rss"},
        **{"wall_s": 30.0, "tokens_per_s": 900.0, "pct_trainable": 0.5, "adapter_bytes": MB},
        "stages": {"load": stage, "adapters": stage, "quantized": {}},
        "train_peak": {},
        **{"optimizer_steps": 8, "tokens_seen": 20_000, "precision": "float32", "compute_precision": "float32"},
        "optim": "adamw_torch",
    }


@pytest.fixture
def res(tmp_path) -> results.StudyResults:
    """base measured TTFT and TPOT at 32 tokens; lora's evaluation was recorded before they were."""
    cfg = load_config(ROOT / "params" / "smoke.yaml", {"methods": ["base", "lora"], "tasks": ["openmath"]})
    evals = {
        "base": eval_record("base", [900.0, 1100.0, 1000.0], fixed_length([40.0, 44.0, 42.0], [10.0, 12.0, 11.0])),
        "lora": eval_record("lora", [300.0, 350.0, 320.0], None),
    }
    res = results.StudyResults(
        cfg, StudyPaths(tmp_path, cfg.study), runs_of(cfg), {"lora": train_record()}, evals, {}, {}
    )
    res.resources = results.costs.resource_table(res)
    res.latency = results.tables.latency_table(res)
    return res


def test_resources_csv_holds_ttft_and_tpot_and_leaves_the_unmeasured_empty(res):
    r = res.resources.set_index(["method", "phase"])
    base = r.loc[("base", "eval")]
    assert (base.ttft_ms_p50, base.ttft_ms_p95, base.tpot_ms_p50, base.tpot_ms_p95) == (42.0, 44.0, 11.0, 12.0)
    assert base.latency_tokens == 32 and base.latency_ms_p50 == 1000.0
    assert r.loc[("lora", "eval")][["ttft_ms_p50", "tpot_ms_p95", "latency_tokens"]].isna().all()
    assert r.loc[("lora", "train")][["ttft_ms_p50", "tpot_ms_p50"]].isna().all()
    assert list(res.resources.columns[: len(results.costs.RESOURCE_COLUMNS)]) == results.costs.RESOURCE_COLUMNS


def test_the_cost_table_shows_ttft_and_tpot_at_their_generation_length(res):
    text = resources_table(res)
    evaluation = text[text.index("### Evaluation") :]
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in evaluation.splitlines()
        if line.startswith("|")
    }
    assert rows["time to first token (TTFT) p50 at batch 1 (ms; generating 32 tokens)"] == ["42.0", "not measured"]
    assert rows["time to first token (TTFT) p95 at batch 1 (ms; generating 32 tokens)"] == ["44.0", "not measured"]
    assert rows["time per output token (TPOT) p50 at batch 1 (ms; tokens 2 to 32)"] == ["11.00", "not measured"]
    assert rows["time per output token (TPOT) p95 at batch 1 (ms; tokens 2 to 32)"] == ["12.00", "not measured"]
    assert rows["latency per whole answer p50 at batch 1 (ms; answers of their own length)"] == ["1,000.0", "320.0"]
    assert "generating exactly 32 tokens each" in text and "not measured: the evaluation" in text
    training = text[text.index("### Training") : text.index("### Evaluation")]
    assert "TTFT" not in training and "TPOT" not in training  # no latency while training
    cells = [c.strip() for line in evaluation.splitlines() if line.startswith("|") for c in line.split("|")[1:-1]]
    assert "" not in cells and "0" not in cells and "0.0" not in cells  # never blank or 0 for "not measured"


def test_every_run_unmeasured_still_says_so(res):
    for run in ("base", "lora"):
        res.evals[run]["latency"].pop("fixed_length", None)
    res.resources = results.costs.resource_table(res)
    text = resources_table(res)
    assert "| time to first token (TTFT) p50 at batch 1 (ms; generating 32 tokens) | not measured | not measured |" in (
        text
    )


def test_the_latency_chart_draws_ttft_and_tpot_per_method_and_names_the_length(res):
    latency = res.latency
    assert list(latency.columns) == ["method", "seed", "latency_ms", "ttft_ms", "tpot_ms", "tokens"]
    assert latency[latency.method == "base"].ttft_ms.tolist() == [40.0, 44.0, 42.0]
    assert latency[latency.method == "lora"].ttft_ms.isna().all()
    fig, caption = charts.chart_latency(res)
    assert fig is not None and len(fig.axes) == 3
    assert "generating exactly 32 tokens" in caption and "time per output token" in caption
    assert [ax.get_xlabel() for ax in fig.axes] == [
        "whole answer (ms)",
        "time to first token (ms; 32 tokens)",
        "time per output token (ms; 32 tokens)",
    ]


def test_the_step_summary_gives_ttft_and_tpot_or_says_they_were_not_measured(res):
    record = {**res.evals["base"], "run": "base"}
    summary = eval_summary(record)
    assert "Generating exactly 32 tokens: time to first token p50 42.0 ms, p95 44.0 ms" in summary
    assert "time per output token p50 11.00 ms, p95 12.00 ms" in summary
    assert "TTFT and TPOT: not measured" in eval_summary({**res.evals["lora"], "run": "lora"})
