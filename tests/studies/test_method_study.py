"""End to end: the offline method study (params/smoke-methods.yaml) through `lorastudy run`:
every method's rows filled by measurements, in the result files and in both renderings."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import pytest

from lorastudy import methods, tasks
from lorastudy.results.tables import comparisons_made
from lorastudy.study.load import load_config

pytestmark = pytest.mark.slow  # 32 steps, each in its own kernel (tens of minutes on two cores)

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params" / "smoke-methods.yaml"
# Every method and step of the study, on fewer items and training steps: the test is about
# what reaches the tables and the report, and 32 steps each in its own kernel cost enough.
N = 30
OVERRIDES = [f"tasks.{task}.n={N}" for task in ("arc_challenge", "openmath", "squad")]
SHRUNK = [arg for o in (*OVERRIDES, "train.max_steps=8", "eval.latency_items=2") for arg in ("-p", o)]


@pytest.fixture(scope="module")
def study(tmp_path_factory, study_folder, run_study):
    root = study_folder(tmp_path_factory.mktemp("methods"))
    start = time.perf_counter()
    result = run_study(PARAMS, root, *SHRUNK, timeout=7200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"method study: {time.perf_counter() - start:.1f} s")
    return root, load_config(PARAMS, root=root)


def results(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / "runs" / "smoke-methods" / "results" / name)


def test_every_method_has_every_primary_score_and_cost(study):
    root, cfg = study
    assert len(cfg.methods) == 16
    metrics = results(root, "metrics.csv")
    primary = metrics[metrics.primary]
    assert set(zip(primary.method, primary.task)) == {(m, t.name) for m in cfg.methods for t in cfg.tasks}
    assert (primary.n == N).all() and primary.value.between(0, 1).all()
    assert (primary.ci_low <= primary.value).all() and (primary.value <= primary.ci_high).all()
    resources = results(root, "resources.csv")
    trained = {m for m in cfg.methods if methods.get(m, cfg).trains}
    assert set(resources[resources.phase == "train"].method) == trained and len(trained) == 13
    assert set(resources[resources.phase == "eval"].method) == set(cfg.methods)
    for column in ("peak_memory_mb", "wall_s", "tokens_per_s", "total_params"):
        assert (resources[column] > 0).all(), column
    assert (resources[resources.phase == "eval"].latency_ms_p50 > 0).all()
    train = resources[resources.phase == "train"].set_index("method")
    assert train.trainable_params["full"] == train.total_params["full"]
    assert train.trainable_params["dora"] > train.trainable_params["lora"] == train.trainable_params["qlora"]
    assert (
        train.trainable_params["lora-r64"]
        == 4 * train.trainable_params["lora"]
        == 8 * train.trainable_params["lora-r8"]
    )
    assert train.bits_per_quantized_weight["qlora-nf4-nodq"] == pytest.approx(4.5)
    assert train.bits_per_quantized_weight["lora-8bit"] > 8
    # The upcasts cost weights memory on the bfloat16 base: the same fp32 weights in both.
    assert train.weights_after_prepare_mb["lora-upcast"] > train.weights_mb["lora"]
    assert train.fp32_params["lora-upcast"] == train.fp32_params["qlora"]


def test_the_comparisons_are_the_declared_ones_with_their_reasons(study):
    root, cfg = study
    comparisons = results(root, "comparisons.csv")
    made = comparisons_made(cfg)
    assert set(zip(comparisons.method_a, comparisons.method_b)) == {(a, b) for a, b, _ in made}
    assert comparisons.reason.notna().all() and comparisons.p_holm.between(0, 1).all()
    assert (comparisons.p_holm >= comparisons.p_value).all()  # Holm over all of them


def test_the_method_space_tables_are_measured(study):
    root, cfg = study
    decompositions = results(root, "decompositions.csv")
    assert set(decompositions.decomposition) == {"precision", "train-or-run"}
    for _, path in decompositions.groupby(["decomposition", "measure", "path"]):
        assert path.delta.sum() == pytest.approx(path.total.iloc[0], abs=1e-6)
    grid = results(root, "grid.csv")
    assert sorted(zip(grid.grid_method, grid["lora.r"])) == [(m, r) for m in ("lora", "qlora") for r in (8, 16, 64)]
    layers = results(root, "quantization_layers.csv")
    assert len(layers) == 14 * 5 and layers.relative_error.gt(0).all()
    pareto = results(root, "pareto.csv")
    assert pareto.groupby("task").on_front.any().all()


def test_the_rendered_report_fills_every_methods_rows(study):
    root, cfg = study
    md = (root / "rendered" / "smoke-methods.md").read_text()
    html = (root / "rendered" / "smoke-methods.html").read_text()
    for heading in (
        "## Executive summary",
        "## Comparisons",
        "## The method space",
        "### Quantization or precision",
        "### Training or running under quantization",
        "### The grid: lora.r crossed with LoRA, QLoRA",
        "## Why quantization costs what it costs",
        "## Provenance",
    ):
        assert heading in md and heading.lstrip("# ") in html, heading
    # Each task's table: a column per method, its primary row an interval in every one of them.
    for t in cfg.tasks:
        task = tasks.get(t.name)
        section = md.split(f"### {task.title} (n = {N})")[1]
        header, _, *rows = section.strip().split("\n\n")[0].splitlines()
        assert header.count("|") - 2 == len(cfg.methods)
        primary = next(r for r in rows if r.startswith(f"| {task.primary} "))
        cells = [c.strip() for c in primary.split("|")[2:-1]]
        assert len(cells) == len(cfg.methods) and all(re.match(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", c) for c in cells)
    assert len(re.findall(r"!\[[^\]]+\]\([^)]+\)", md)) >= 7  # every chart, the method space's among them
    assert "Pareto front" in md


def test_a_finished_method_study_reruns_without_redoing_anything(study, run_study):
    root, _ = study
    again = run_study(PARAMS, root, *SHRUNK)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.count("skipped") == 32
