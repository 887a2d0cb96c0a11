"""A task and a method declared here, in the test, run through data preparation, training,
evaluation and the result tables: no module of lorastudy knows their names."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from lorastudy import methods, report, results, tasks
from lorastudy.data.datasets import prepare
from lorastudy.evaluate.step import evaluate
from lorastudy.methods.declaration import Method
from lorastudy.report import charts
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import runs_of
from lorastudy.study.schema import ConfigError
from lorastudy.tasks import Cleaned, HubSource, Metric, Task, chat_prompt
from lorastudy.train.loop import train
from lorastudy.util.files import read_jsonl

ROOT = Path(__file__).resolve().parents[2]
CAPITALS = {"France": "Paris", "Peru": "Lima", "Norway": "Oslo", "Egypt": "Cairo", "Japan": "Tokyo", "Spain": "Madrid"}


def capitals_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    countries = list(CAPITALS)
    return [{"id": f"cap{i}", "country": (c := rng.choice(countries)), "capital": CAPITALS[c]} for i in range(n)]


def clean_capitals(rows) -> Cleaned:
    out = Cleaned()
    for row in rows:
        out.loaded += 1
        if row.get("country") and row.get("capital"):
            out.rows.append(dict(row))
        else:
            out.skip("no country or capital")
    return out


def score_capital(row: dict, output: str, truncated: bool = False) -> dict:
    # A cut answer that names the capital still names it: `truncated` changes nothing here.
    named = row["capital"].lower() in output.lower()
    return {"extracted": output, "references": [row["capital"]], "scores": {"names_capital": float(named)}}


CAPITALS_TASK = Task(
    name="capitals",
    title="Capitals",
    version=1,
    kind="generate",
    metrics=(Metric("names_capital", True, True, "share of answers that name the capital", primary=True),),
    hub=HubSource("example/capitals", "test"),
    clean=clean_capitals,
    prompt=lambda tokenizer, row: chat_prompt(tokenizer, f"What is the capital of {row['country']}?"),
    score=score_capital,
    question=lambda row: f"capital of {row['country']}",
    overlap_keys=lambda row: (row["country"],),
    synthetic=capitals_rows,
    max_new_tokens=6,
)

LORA_R4 = Method(
    "lora-r4",
    "LoRA r4",
    "#2ca02c",
    lambda cfg: f"LoRA with rank {cfg.lora.r} on the unquantized base.",
    overrides={"lora.r": 4},
    compares_to=("base", "lora"),
)


@pytest.fixture
def declared():
    with tasks.TASKS.registered(CAPITALS_TASK), methods.METHODS.registered(LORA_R4):
        yield


@pytest.mark.slow
def test_a_task_and_a_method_declared_in_a_test_reach_every_result_table(declared, study_root):
    overrides = {
        "methods": ["base", "lora", "lora-r4"],
        "data.train_samples": 24,
        "train.max_steps": 2,
        "tasks": {"capitals": {"n": 6}, "arc_challenge": {"n": 4}},
        "eval.latency_task": "capitals",
        "eval.latency_items": 2,
    }
    cfg = load_config(ROOT / "params" / "smoke.yaml", overrides, root=study_root)
    paths = StudyPaths(study_root, cfg.study)
    summary = prepare(cfg, paths.data, log=lambda _: None)
    capitals = summary["datasets"]["capitals"]
    assert {k: capitals[k] for k in ("loaded", "skipped", "eval", "overlap_with_train")} == {
        "loaded": 6,
        "skipped": {},
        "eval": 6,
        "overlap_with_train": 0,
    }
    assert capitals["revision"]["kind"] == "sha256 of capitals.jsonl"
    records = {}
    for run in runs_of(cfg):
        if methods.get(run.method).trains:
            records[run.method] = train(cfg, run, paths, log=lambda _: None)
        evaluate(cfg, run, paths, log=lambda _: None)
    # The method's override took effect: rank 4 trains a quarter of rank 16's parameters.
    assert records["lora-r4"]["trainable_params"] * 4 == records["lora"]["trainable_params"]

    predictions = read_jsonl(paths.predictions("lora-r4", "capitals"))
    assert [p["id"] for p in predictions] == [f"cap{i}" for i in range(6)]
    assert all(p["scores"]["names_capital"] in (0.0, 1.0) for p in predictions)

    res = results.load(cfg, paths)
    results.write(res)
    metrics = res.metrics[res.metrics.task == "capitals"]
    assert set(metrics.method) == {"base", "lora", "lora-r4"} and set(metrics.metric) == {"names_capital"}
    assert metrics.primary.all() and (metrics.n == 6).all()
    pairs = set(zip(res.comparisons.method_a, res.comparisons.method_b))
    assert pairs == {("lora", "base"), ("lora-r4", "base"), ("lora-r4", "lora")}
    assert set(res.comparisons.task) == {"capitals", "arc_challenge"}
    assert set(res.resources.method) == {"base", "lora", "lora-r4"}
    # Each task's evaluation has its own peak memory, and the run's is the largest of them.
    evals = res.resources[res.resources.phase == "eval"]
    assert (evals["peak_memory_mb.capitals"] > 0).all() and (evals["peak_memory_mb.arc_challenge"] > 0).all()
    assert (
        evals.peak_memory_mb >= evals[["peak_memory_mb.capitals", "peak_memory_mb.arc_challenge"]].max(axis=1)
    ).all()
    latency = res.evals["lora-r4"]["latency"]
    assert latency["task"] == "capitals" and latency["items"] == 2
    # The report names them by their declarations.
    text = report.title(res) + report.performance_tables(res) + report.comparisons_table(res) + report.examples(res)
    assert "### Capitals" in text and "LoRA r4 \u2212 LoRA" in text and "capital of" in text
    fig, caption = charts.chart_primary(res)
    assert fig is not None and "Primary metric" in caption


def test_an_undeclared_task_or_method_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        load_config(ROOT / "params" / "smoke.yaml", {"methods": ["base", "lora-r4"], "tasks": {"capitals": {}}})
    text = str(err.value)
    assert "unknown method 'lora-r4'" in text and "tasks.capitals: unknown task" in text


def test_a_method_override_must_name_a_setting():
    bad = Method("bad", "Bad", "#000000", lambda cfg: "", overrides={"lora.rank": 4})
    with pytest.raises(ValueError, match="override 'lora.rank' is not a model, lora, quant or train setting"):
        methods.register(bad)
    assert "bad" not in methods.METHODS


def test_every_builtin_task_declares_one_primary_metric_and_a_test_per_compared_metric():
    for task in tasks.TASKS:
        assert sum(m.primary for m in task.metrics) == 1, task.name
        for metric in task.metrics:
            assert metric.aggregation in ("mean", "median")
            # A median over a subset of items has no paired test; a mean does.
            assert (metric.test is None) == (metric.aggregation == "median"), (task.name, metric.name)
