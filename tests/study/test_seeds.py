"""A study with several seeds, run in-process: per-seed points, seed spread, paired tests
on seed-averaged scores, and a report built from them."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from lorastudy import report, results  # noqa: E402
from lorastudy.data.datasets import prepare  # noqa: E402
from lorastudy.evaluate.step import evaluate  # noqa: E402
from lorastudy.report import charts  # noqa: E402
from lorastudy.study.load import load_config  # noqa: E402
from lorastudy.study.paths import StudyPaths  # noqa: E402
from lorastudy.study.runs import runs_of
from lorastudy.train.loop import train  # noqa: E402

pytestmark = pytest.mark.slow  # runs studies end to end (minutes)

ROOT = Path(__file__).resolve().parents[2]


def test_two_seeds_give_spread_points_and_averaged_comparisons(study_root):
    overrides = {
        "methods": ["base", "lora"],
        "seeds": [0, 1],
        "data.train_samples": 32,
        "train.max_steps": 4,
        "tasks.arc_challenge.n": 8,
        "tasks.openmath.n": 8,
        "tasks.squad.n": 8,
        "tasks.openmath.max_new_tokens": 16,
        "eval.latency_items": 2,
    }
    cfg = load_config(ROOT / "params" / "smoke.yaml", overrides, root=study_root)
    paths = StudyPaths(study_root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    quiet = lambda _: None  # noqa: E731
    for run in runs_of(cfg):
        if run.method != "base":
            train(cfg, run, paths, log=quiet)
        evaluate(cfg, run, paths, log=quiet)

    res = results.load(cfg, paths)
    written = results.write(res)
    assert {"metrics.csv", "comparisons.csv", "resources.csv", "metrics_by_seed.csv"} <= set(written)
    lora = res.metrics[(res.metrics.method == "lora") & (res.metrics.metric == "acc_norm")].iloc[0]
    assert lora.n_seeds == 2 and lora.seed_sd is not None and lora.seed_sd >= 0
    by_seed = res.metrics_by_seed
    assert set(by_seed[by_seed.method == "lora"].seed) == {0, 1}
    # The per-item score of a method is its mean over seeds: 0, 0.5 or 1 for accuracy.
    scores = res.item_scores("lora", "arc_challenge", "acc")
    assert set(scores) <= {0.0, 0.5, 1.0}
    # With two seeds the comparison counts seed-to-seed variance, whatever the metric declares.
    row = res.comparisons[(res.comparisons.metric == "acc") & (res.comparisons.method_a == "lora")].iloc[0]
    assert row.test == "seed_item_bf" and row.n_seeds == 2
    assert row.seed_delta_min <= row.delta <= row.seed_delta_max
    train_row = res.resources[(res.resources.method == "lora") & (res.resources.phase == "train")].iloc[0]
    assert train_row.n_seeds == 2 and train_row.wall_s > 0

    # The seed spread shows in the tables; the sentence on it explains the comparison, below the table.
    assert "seed sd" in report.performance_tables(res) + report.executive_summary(res)
    assert "Over 2 seeds the per-seed" in report.comparisons_table(res)
    fig, caption = charts.chart_seeds(res)
    assert fig is not None and "seed" in caption


@pytest.mark.parametrize("params", ["qwen3-0.6b.yaml", "smollm2-135m.yaml"])
def test_the_real_studies_train_three_seeds_and_evaluate_the_base_once(params):
    cfg = load_config(Path(__file__).resolve().parents[2] / "params" / params)
    runs = runs_of(cfg)
    assert len(cfg.seeds) == 3
    assert [r.name for r in runs if r.method == "base"] == ["base"]
    for method in ("lora", "qlora"):
        assert [r.name for r in runs if r.method == method] == [f"{method}_seed{s}" for s in cfg.seeds]
