"""Training curves in the tools people already use (train.report_to): the Trainer's own TensorBoard
and MLflow integrations, writing under runs/<study>/tracking/ and nowhere else, offline.

One tracked run per method and seed, named `<method>_seed<seed>` in every study, so that runs of
several studies read side by side. TensorBoard: an event folder per run in tracking/tensorboard/.
MLflow: a file store in tracking/mlflow/, one experiment per study. Each run logs the study's
parameters beside the Trainer's arguments. A resumed training continues its MLflow run (its id is
kept in the step's folder) and writes on into its TensorBoard folder; a training started afresh
starts its TensorBoard folder afresh.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..study.paths import StudyPaths
from ..study.schema import Run, StudyConfig

# Where each tracker writes, under runs/<study>/tracking/.
TENSORBOARD, MLFLOW = "tensorboard", "mlflow"


MLFLOW_FILE_STORE = "MLFLOW_ALLOW_FILE_STORE"


def trackers(cfg: StudyConfig) -> list[str]:
    return [t for t in cfg.train.report_to if t != "none"]


def tracked_name(run: Run) -> str:
    return f"{run.method}_seed{run.seed}"


def tensorboard_dir(paths: StudyPaths, run: Run) -> Path:
    return paths.tracking / TENSORBOARD / tracked_name(run)


def mlflow_uri(paths: StudyPaths) -> str:
    return (paths.tracking / MLFLOW).resolve().as_uri()


def flat_params(cfg: StudyConfig) -> dict[str, str]:
    """The study's resolved parameters as MLflow params: `section.field` keys, text values."""
    flat: dict[str, str] = {}
    for section, value in cfg.resolved().items():
        if isinstance(value, dict):
            flat.update({f"study.{section}.{k}": json.dumps(v, default=str) for k, v in value.items()})
        else:
            flat[f"study.{section}"] = json.dumps(value, default=str)
    return {k: v[:500] for k, v in flat.items()}  # older MLflow stores refuse longer values


def configure(trainer, cfg: StudyConfig, run: Run, paths: StudyPaths, resuming: bool) -> None:
    """Point the Trainer's TensorBoard integration at the run's folder (a fresh one unless resuming)."""
    from transformers.integrations import TensorBoardCallback

    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            folder = tensorboard_dir(paths, run)
            if not resuming:
                shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            callback.logging_dir = str(folder)


def study_params_callback(cfg: StudyConfig, trainer):
    """Logs the study's parameters into TensorBoard when training begins (after the Trainer's own
    integration has opened its writer: `trainer.add_callback` puts this one after it)."""
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback

    text = "```json\n" + json.dumps(cfg.resolved(), indent=2, default=str) + "\n```"

    class StudyParams(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            for callback in trainer.callback_handler.callbacks:
                if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
                    callback.tb_writer.add_text("study_params", text)

    return StudyParams()


@contextmanager
def mlflow_run(cfg: StudyConfig, run: Run, paths: StudyPaths, state_dir: Path, resuming: bool) -> Iterator[None]:
    """An MLflow run open around the training (when train.report_to names mlflow), which the
    Trainer's MLflowCallback logs into; ended with the training's outcome."""
    if MLFLOW not in trackers(cfg):
        yield
        return
    import mlflow

    # MLflow 3.x keeps the file store only on request; it is what works offline with mlflow-skinny
    # (a database store needs SQLAlchemy) and what a reader can copy as a folder.
    os.environ.setdefault(MLFLOW_FILE_STORE, "true")
    id_file = state_dir / "mlflow_run_id"
    run_id = id_file.read_text().strip() if resuming and id_file.is_file() else None
    mlflow.set_tracking_uri(mlflow_uri(paths))
    mlflow.set_experiment(cfg.study)
    active = mlflow.start_run(run_id=run_id, run_name=None if run_id else tracked_name(run))
    state_dir.mkdir(parents=True, exist_ok=True)
    id_file.write_text(active.info.run_id)
    if run_id is None:
        params = list(flat_params(cfg).items())
        for start in range(0, len(params), 100):  # MLflow takes at most 100 params in one call
            mlflow.log_params(dict(params[start : start + 100]))
        mlflow.set_tags({"study": cfg.study, "method": run.method, "seed": str(run.seed)})
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"  # stopped, not broken: the next run resumes it
        raise
    finally:
        mlflow.end_run(status=status)
