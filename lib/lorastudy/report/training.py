"""The report's view of how each training went: the loss chart (training and validation loss per
method and seed), which trainings may be under-trained, and where the trackers wrote."""

from __future__ import annotations

import matplotlib.pyplot as plt

from .. import methods
from ..results.recorded import StudyResults
from ..study.runs import runs_of
from . import markdown
from .format import integer, number


def _title(res: StudyResults, method: str, seed: int) -> str:
    title = methods.get(method, res.cfg).title
    return f"{title} (seed {seed})" if len(res.cfg.seeds) > 1 else title


def chart_losses(res: StudyResults):
    """Training loss (solid) and, where it was measured, validation loss (dashed, dots) per run."""
    if res.losses.empty:
        return None, "No training losses were recorded (no method was trained)."
    fig, ax = plt.subplots(figsize=(6.5, 4))
    validated = "validation_loss" in res.losses and res.losses.validation_loss.notna().any()
    for (method, seed), frame in res.losses.groupby(["method", "seed"], sort=False):
        colour, name = methods.get(method, res.cfg).colour, _title(res, method, seed)
        trained = frame.dropna(subset=["loss"])
        ax.plot(trained.step, trained.loss, color=colour, label=f"{name}, training", linewidth=1.4)
        if validated:
            points = frame.dropna(subset=["validation_loss"])
            ax.plot(points.step, points.validation_loss, "o--", color=colour, label=f"{name}, validation")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    caption = (
        f"Training loss (cross-entropy on answer tokens only) every {res.cfg.train.logging_steps} optimizer "
        "step(s), one line per method and seed"
    )
    if validated:
        n = max(r.get("validation_examples", 0) for r in res.train.values())
        caption += (
            f"; dashed, the validation loss on {integer(n)} held-out training-task items never trained on nor "
            f"evaluated, every {res.cfg.train.eval_steps} steps and at the end"
        )
    return fig, caption + ". " + convergence_sentence(res)


def convergence_sentence(res: StudyResults) -> str:
    """Which trainings may be under-trained, with the number, or why that is not known."""
    share = res.cfg.report.under_trained_drop
    if res.cfg.train.eval_steps == 0:
        return "The validation loss was not measured (train.eval_steps is 0), so convergence is not judged."
    table = res.convergence
    if table.empty:
        return "The validation loss was measured at fewer than two steps, so convergence is not judged."
    flagged = table[table.under_trained]
    if flagged.empty:
        worst = table.sort_values("drop").iloc[-1]
        return (
            f"Every training's validation loss had levelled off: over the last quarter of training none fell by "
            f"more than {number(100 * share, 1)}% (the largest fall, {_title(res, worst.method, worst.seed)}'s, "
            f"was {number(100 * worst['drop'], 1)}%)."
        )
    parts = [
        f"**{_title(res, r.method, r.seed)} may be under-trained**: its validation loss still fell "
        f"{number(100 * r['drop'], 1)}% over the last quarter of training ({number(r.from_loss, 4)} at step "
        f"{integer(r.from_step)} to {number(r.to_loss, 4)} at step {integer(r.to_step)})"
        for _, r in flagged.iterrows()
    ]
    return (
        "; ".join(parts) + f", more than the {number(100 * share, 1)}% of report.under_trained_drop. A "
        "difference involving such a training may be one of how fast the method learns, not of what it can "
        "reach: train longer (train.epochs or train.max_steps) before reading it as a cost."
    )


def tracking_section(res: StudyResults) -> str:
    """Where train.report_to's trackers wrote, and the one command that opens each."""
    trackers = [t for t in res.cfg.train.report_to if t != "none"]
    if not trackers:
        return ""
    folder = res.paths.tracking
    lines = ["### Training curves in TensorBoard and MLflow", ""]
    if "tensorboard" in trackers:
        events = folder / "tensorboard"
        lines.append(
            f"- TensorBoard: one event folder per method and seed in {markdown.code(events)}; open them with "
            f"{markdown.code(f'tensorboard --logdir {events}')}."
        )
    if "mlflow" in trackers:
        store = folder / "mlflow"
        command = f"MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri {store.resolve().as_uri()}"
        lines.append(
            f"- MLflow: a file store in {markdown.code(store)}, experiment {markdown.code(res.cfg.study)}, one run "
            f"per method and seed with the study's parameters; open it with {markdown.code(command)} (the "
            "`mlflow` package's UI)."
        )
    missing = [r.name for r in runs_of(res.cfg) if r.name in res.train and not res.train[r.name].get("tracking")]
    if missing:
        lines.append(
            f"- Trained before train.report_to named a tracker, so not tracked: {', '.join(missing)} "
            "(`--force` retrains them; turning tracking on alone does not change what a training computes)."
        )
    return "\n".join(lines)
