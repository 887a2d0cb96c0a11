"""Whether each training had converged, read from its validation loss (train.eval_steps): a run whose
validation loss still fell by more than report.under_trained_drop over the last quarter of its
steps may be under-trained, and a difference between methods may then be one of convergence
speed rather than of what each method can reach (a quantized base that learns more slowly looks
like a quantized base that costs accuracy)."""

from __future__ import annotations

import pandas as pd

from .recorded import StudyResults

CONVERGENCE_COLUMNS = [
    "method",
    "seed",
    "run",
    "steps",
    "from_step",
    "from_loss",
    "to_step",
    "to_loss",
    "drop",
    "under_trained",
]


def last_quarter(points: list[tuple[int, float]], steps: int) -> tuple[tuple[int, float], tuple[int, float]] | None:
    """The validation points that span the last quarter of `steps`: the last one measured at or
    before its start (the first one, when none was) and the last one. None: a single point."""
    if len(points) < 2:
        return None
    start = 0.75 * steps
    before = [p for p in points if p[0] <= start]
    first = before[-1] if before else points[0]
    return (first, points[-1]) if first[0] < points[-1][0] else None


def convergence_table(res: StudyResults) -> pd.DataFrame:
    """One row per trained run with a validation loss measured at two steps or more."""
    if res.losses.empty or "validation_loss" not in res.losses:
        return pd.DataFrame(columns=CONVERGENCE_COLUMNS)
    rows = []
    threshold = res.cfg.report.under_trained_drop
    for run in res.runs:
        frame = res.losses[(res.losses.method == run.method) & (res.losses.seed == run.seed)]
        measured = frame.dropna(subset=["validation_loss"])
        points = [(int(s), float(v)) for s, v in zip(measured.step, measured.validation_loss)]
        steps = int(res.train[run.name]["optimizer_steps"]) if run.name in res.train else 0
        span = last_quarter(points, steps)
        if span is None:
            continue
        (from_step, from_loss), (to_step, to_loss) = span
        drop = (from_loss - to_loss) / from_loss if from_loss > 0 else 0.0
        rows.append(
            {
                "method": run.method,
                "seed": run.seed,
                "run": run.name,
                "steps": steps,
                "from_step": from_step,
                "from_loss": from_loss,
                "to_step": to_step,
                "to_loss": to_loss,
                "drop": drop,
                "under_trained": drop > threshold,
            }
        )
    return pd.DataFrame(rows, columns=CONVERGENCE_COLUMNS)
