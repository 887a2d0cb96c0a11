"""Validation, tracking, bucketing: their params, the loss rows, the convergence flag, and the
trackers' files read back by the trackers' own readers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lorastudy import pipeline
from lorastudy.data.datasets import load_train, load_validation, prepare
from lorastudy.results.convergence import last_quarter
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run
from lorastudy.study.schema import ConfigError
from lorastudy.train.callbacks import loss_rows
from lorastudy.train.loop import train, training_arguments

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"


def _problems(overrides: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(SMOKE, overrides)
    return "\n".join(info.value.problems)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"train.eval_steps": 10, "data.validation_samples": 0}, "train.eval_steps: the validation loss needs"),
        ({"train.eval_steps": 0}, "data.validation_samples: nothing measures on them"),
        ({"train.eval_steps": -1}, "train.eval_steps: must be 0 (off) or positive"),
        ({"train.save_steps": -5}, "train.save_steps: must be 0 (off) or positive"),
        ({"train.keep_checkpoints": True}, "train.keep_checkpoints: there are no checkpoints"),
        ({"train.report_to": "wandb"}, "train.report_to: expected"),
        ({"train.report_to": ["none", "tensorboard"]}, "train.report_to: 'none' cannot be combined"),
        ({"train.report_to": ["mlflow", "mlflow"]}, "train.report_to: a tracker is listed twice"),
        ({"train.group_by_length": "yes"}, "train.group_by_length: expected true or false"),
        ({"report.under_trained_drop": 1.5}, "report.under_trained_drop: must be in (0, 1)"),
    ],
)
def test_invalid_watching_params_are_errors_naming_the_key(overrides, key):
    assert key in _problems(overrides)


def test_a_tracker_that_is_missing_is_named_before_any_model_loads(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    assert "train.report_to: mlflow is not installed" in _problems({"train.report_to": "mlflow"})


def test_tracking_and_checkpoints_are_no_part_of_the_training_identity_and_validation_is(tmp_path):
    def training_params(overrides):
        cfg = load_config(SMOKE, overrides, root=tmp_path)
        step = next(s for s in pipeline.plan(cfg, StudyPaths(tmp_path, "smoke")) if s.id == "02_train-lora")
        return step.params

    plain = training_params({})
    assert training_params({"train.report_to": ["tensorboard", "mlflow"], "train.save_steps": 5}) == plain
    assert training_params({"train.save_steps": 5, "train.keep_checkpoints": True}) == plain
    assert training_params({"train.eval_steps": 10}) != plain
    assert training_params({"train.group_by_length": True}) != plain


def test_the_validation_slice_is_neither_trained_on_nor_evaluated(tmp_path):
    cfg = load_config(SMOKE, {"data.train_samples": 40, "data.validation_samples": 12}, root=tmp_path)
    paths = StudyPaths(tmp_path, cfg.study)
    summary = prepare(cfg, paths.data, log=lambda _: None)
    validation, trained = load_validation(paths.data), load_train(paths.data)
    held_out = pd.read_json(paths.data / "eval" / "openmath.jsonl", lines=True)
    assert len(validation) == 12 and summary["datasets"]["openmath"]["validation"] == 12
    ids = {r["id"] for r in validation}
    assert not ids & {r["id"] for r in trained} and not ids & set(held_out["id"])


def test_loss_rows_put_the_validation_loss_beside_the_training_loss():
    history = [
        {"loss": 2.0, "learning_rate": 1e-3, "grad_norm": 1.0, "epoch": 0.1, "step": 1},
        {"loss": 1.5, "learning_rate": 1e-3, "grad_norm": 0.9, "epoch": 0.2, "step": 2},
        {"eval_loss": 1.7, "eval_runtime": 0.5, "epoch": 0.2, "step": 2},
        {"eval_loss": 1.6, "epoch": 0.3, "step": 3},
        {"train_runtime": 9.0, "train_loss": 1.7, "epoch": 0.3, "step": 3},
    ]
    rows = [(r["step"], r["loss"], r["validation_loss"]) for r in loss_rows(history)]
    assert rows == [(1, 2.0, None), (2, 1.5, 1.7), (3, None, 1.6)]


def test_the_last_quarter_spans_from_the_last_validation_before_it_to_the_end():
    points = [(20, 1.0), (40, 0.8), (60, 0.7), (80, 0.65)]
    assert last_quarter(points, 80) == ((60, 0.7), (80, 0.65))
    assert last_quarter([(50, 0.9), (100, 0.8)], 100) == ((50, 0.9), (100, 0.8))
    assert last_quarter([(90, 0.9), (100, 0.8)], 100) == ((90, 0.9), (100, 0.8))  # none before: the first
    assert last_quarter([(100, 0.8)], 100) is None


def test_group_by_length_reaches_the_trainers_sampler(tmp_path):
    from lorastudy import methods

    cfg = load_config(SMOKE, {"train.group_by_length": True}, root=tmp_path)
    args = training_arguments(cfg, methods.get("lora"), 0, str(tmp_path))
    assert getattr(args, "train_sampling_strategy", None) == "group_by_length" or args.group_by_length is True


@pytest.mark.slow
def test_tensorboard_and_mlflow_read_back_the_training(study_root):
    import mlflow
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = {
        "data.train_samples": 16,
        "data.validation_samples": 8,
        "train.max_steps": 4,
        "train.batch_size": 4,
        "train.logging_steps": 1,
        "train.eval_steps": 2,
        "train.report_to": ["tensorboard", "mlflow"],
    }
    cfg = load_config(SMOKE, overrides, root=study_root)
    paths = StudyPaths(study_root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    train(cfg, find_run(cfg, "lora", 0), paths, log=lambda _: None)
    losses = pd.read_csv(paths.loss_csv("lora"))

    events = EventAccumulator(str(paths.tracking / "tensorboard" / "lora_seed0")).Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(list(losses.loss))
    validated = losses.dropna(subset=["validation_loss"])
    assert [e.step for e in events.Scalars("eval/loss")] == list(validated.step) == [2, 4]
    assert [e.value for e in events.Scalars("eval/loss")] == pytest.approx(list(validated.validation_loss))
    assert "study_params/text_summary" in events.Tags()["tensors"]

    client = mlflow.tracking.MlflowClient((paths.tracking / "mlflow").resolve().as_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.run_name == "lora_seed0" and run.info.status == "FINISHED"
    assert run.data.params["study.train.learning_rate"] == "0.004" and run.data.tags["method"] == "lora"
    history = client.get_metric_history(run.info.run_id, "eval_loss")
    assert [m.value for m in history] == pytest.approx(list(losses.validation_loss.dropna()))
