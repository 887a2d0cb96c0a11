"""Running a study: its steps (steps.py) and their identities (code_identity.py, records.py),
each step's notebook run in a fresh kernel (execution.py; the local executor starts kernels ahead,
kernels.py) by an executor (executors.py) under a
scheduler (scheduler.py) while one run holds the study (lock.py), the report rendered
(rendering.py), and `lorastudy check`'s validation and estimate (checks.py, estimate.py). It runs
notebooks and never imports training or evaluation."""

from .execution import StepFailed, device_environment, execute, kernel_environment
from .records import InconsistentRuns, identity, read_records, recorded_chain, why_not_done
from .scheduler import Scheduler, run_study
from .steps import Step, plan

__all__ = [
    "InconsistentRuns",
    "Scheduler",
    "Step",
    "StepFailed",
    "device_environment",
    "execute",
    "identity",
    "kernel_environment",
    "plan",
    "read_records",
    "recorded_chain",
    "run_study",
    "why_not_done",
]
