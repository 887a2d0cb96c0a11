"""The evaluation tasks, each declared in one place: how its prompt is built, how it is
scored, which metrics it reports, their direction, and which one is primary.

The report reads a metric's direction and scale from here (as lm-evaluation-harness task
configs do), so nothing downstream guesses whether higher is better.
"""

from __future__ import annotations

from dataclasses import dataclass

OPENMATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
SQUAD_INSTRUCTION = "Answer the question with a short span copied from the passage. Reply with the answer only."


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    # A fraction in [0, 1] (accuracy, exact match, F1) or a quantity on its own scale.
    is_fraction: bool
    description: str
    # Per-item scores exist, so the metric gets an interval and paired tests.
    per_item: bool = True
    # The paired test for one run per method, declared rather than guessed from the values:
    # "mcnemar_exact" for 0/1 scores, "paired_permutation" for continuous ones (F1 stays
    # continuous even when every value happens to be 0 or 1). See lorastudy.stats.
    test: str = "mcnemar_exact"
    # How per-item values become the metric: "mean" over items, or "median" over the
    # outputs that have a value (pooled over seeds).
    aggregation: str = "mean"

    @property
    def is_binary(self) -> bool:
        return self.test == "mcnemar_exact"


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    kind: str  # "loglikelihood" or "generate"
    metrics: tuple[Metric, ...]
    primary: str
    default_max_new_tokens: int = 0
    stop_strings: tuple[str, ...] = ()
    hub_id: str = ""
    hub_config: str | None = None
    hub_split: str = ""

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)


ACC = Metric("acc", True, True, "accuracy of the highest summed log-likelihood choice", test="mcnemar_exact")
ACC_NORM = Metric(
    "acc_norm",
    True,
    True,
    "accuracy with log-likelihood divided by the choice's length in characters",
    test="mcnemar_exact",
)
EXACT_MATCH = Metric(
    "exact_match", True, True, "share of items whose answer matches a reference exactly", test="mcnemar_exact"
)
NO_ANSWER = Metric(
    "no_answer_rate",
    False,
    True,
    "share of outputs from which no finite number was read (including a \\boxed{} holding no number)",
    test="mcnemar_exact",
)
MEDIAN_ABS_ERROR = Metric(
    "median_abs_error",
    False,
    False,
    "median absolute error of the extracted number, over the outputs (items \u00d7 seeds) that have a finite one",
    per_item=False,
    test="",
    aggregation="median",
)
F1 = Metric("f1", True, True, "token-overlap F1 after SQuAD normalisation, best reference", test="paired_permutation")

TASKS: dict[str, Task] = {
    "arc_challenge": Task(
        name="arc_challenge",
        title="ARC-Challenge",
        kind="loglikelihood",
        metrics=(ACC, ACC_NORM),
        primary="acc_norm",
        hub_id="allenai/ai2_arc",
        hub_config="ARC-Challenge",
        hub_split="test",
    ),
    "openmath": Task(
        name="openmath",
        title="OpenMath (held out)",
        kind="generate",
        metrics=(EXACT_MATCH, NO_ANSWER, MEDIAN_ABS_ERROR),
        primary="exact_match",
        default_max_new_tokens=512,
        hub_id="nvidia/OpenMathInstruct-2",
        hub_split="train_1M",
    ),
    "squad": Task(
        name="squad",
        title="SQuAD v1.1",
        kind="generate",
        metrics=(EXACT_MATCH, F1),
        primary="f1",
        default_max_new_tokens=32,
        stop_strings=("\n",),
        hub_id="rajpurkar/squad",
        hub_split="validation",
    ),
}


def openmath_user_message(problem: str) -> str:
    return f"{problem}\n{OPENMATH_INSTRUCTION}"


def squad_user_message(context: str, question: str) -> str:
    return f"{SQUAD_INSTRUCTION}\n\nPassage: {context}\n\nQuestion: {question}"


def arc_context(question: str) -> str:
    """lm-evaluation-harness arc_challenge: doc_to_text, scored without a chat template."""
    return f"Question: {question}\nAnswer:"
