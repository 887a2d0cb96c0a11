"""What a task declaration holds (Task, Metric, where its data comes from and how it is cleaned),
the helpers declarations share (the chat prompt, multiple-choice scoring), and the registry."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..util.registry import Registry

# ------------------------------------------------------------------------- declarations


# The per-item score of a task with a reference reply (Task.reference): its negative log-likelihood
# per token, which the evaluation step measures and the task's metric of that name aggregates.
REFERENCE_KEY = "nll_per_token"


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    # A fraction in [0, 1] (accuracy, exact match, F1) or a quantity on its own scale.
    is_fraction: bool
    description: str
    primary: bool = False
    # mean: over every item (paired tests and bootstrap intervals apply); median: over the items
    # whose score is defined (not None), e.g. the error of outputs that have a number.
    aggregation: Literal["mean", "median"] = "mean"
    # The paired test for comparing two methods on this metric; None: not compared.
    test: Literal["mcnemar_exact", "paired_permutation"] | None = "mcnemar_exact"
    # The key of the per-item score in a prediction's "scores" (defaults to the metric's name).
    item_key: str = ""

    @property
    def key(self) -> str:
        return self.item_key or self.name

    @property
    def compared(self) -> bool:
        return self.test is not None

    @property
    def is_binary(self) -> bool:
        """0/1 per item: its one-run interval is exact and agrees with the exact McNemar test."""
        return self.test == "mcnemar_exact"

    def values(self, items: list[dict]) -> list[float]:
        """The per-item scores this metric aggregates: every item's for a mean, the defined
        ones for a median."""
        values = [item["scores"].get(self.key) for item in items]
        return [float(v) for v in values if v is not None] if self.aggregation == "median" else values

    def aggregate(self, items: list[dict]) -> float | None:
        """The metric over items; None when it is undefined (a median over no defined value)."""
        values = self.values(items)
        if not values:
            return None
        return float(statistics.median(values) if self.aggregation == "median" else statistics.fmean(values))


@dataclass(frozen=True)
class HubSource:
    """A dataset on the Hugging Face Hub, loaded with `datasets.load_dataset(id, config, split)`."""

    id: str
    split: str
    config: str | None = None
    size: int | None = None  # rows in the split, so `check` can refuse a study asking for more
    streaming: bool = False  # stream the head of a split too big to download whole


@dataclass
class Cleaned:
    """Rows that passed a task's cleaner, with counts of those skipped and why, and the problems
    that make the data unusable as it stands (a row that is not in the declared format), which
    are errors rather than skips: each names the row and the field."""

    rows: list[dict] = field(default_factory=list)
    loaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    # Bump when the prompt, the scorer or the cleaning changes, so recorded results are redone.
    version: int
    # loglikelihood: every choice scored as a continuation; generate: a generated output scored;
    # reference: only the likelihood of each item's reference reply (see `reference`).
    kind: Literal["loglikelihood", "generate", "reference"]
    metrics: tuple[Metric, ...]
    hub: HubSource
    clean: Callable[[Iterable[dict]], Cleaned]
    # Generation: the whole prompt (chat template applied). Log-likelihood: the context shared
    # by the choices, which `choices` continues.
    prompt: Callable[[Any, dict], str]
    # (row, output) -> {"extracted", "references", "scores": {metric key: value}}; the output is
    # the generated text, or for log-likelihood tasks the list of the choices' log-likelihoods.
    # A generation task's scorer also takes `truncated` (keyword): whether the output ran to
    # the token limit, so a cut answer can count as none.
    score: Callable[[dict, Any], dict]
    # The text a reader needs to recognise an item in the report.
    question: Callable[[dict], str]
    # Texts that identify an item: one equal (normalised) to a training item's is an overlap.
    overlap_keys: Callable[[dict], tuple[str, ...]]
    # n rows in the task's schema from a seed, for studies without a network (None: the task's
    # data is never synthetic, see `study_data`).
    synthetic: Callable[[int, int], list[dict]] | None = None
    choices: Callable[[dict], list[str]] | None = None
    # Items evaluated when the study gives no n; None: the whole split.
    default_n: int | None = None
    max_new_tokens: int = 0
    stop_strings: tuple[str, ...] = ()
    # A task that can be trained on: a row as (user message, answer). Its evaluation items are
    # then held out of the same pool as the training items.
    train_example: Callable[[dict], tuple[str, str]] | None = None
    # Whether a clean row can be evaluated (e.g. OpenMath needs a numeric reference answer).
    evaluable: Callable[[dict], bool] = lambda row: True
    # What `evaluable` keeps, in words for the report's data section ("" where it keeps every row).
    evaluable_note: str = ""
    # A task trained on as a conversation: a row's {role, content} turns, rendered with the model's
    # chat template, the loss on every assistant turn (instead of `train_example`'s one answer).
    train_messages: Callable[[dict], list[dict]] | None = None
    # The reply whose negative log-likelihood per token (given `prompt`) each item is scored by, as
    # `nll_per_token`; with kind "generate", the generated output is scored by `score` too.
    reference: Callable[[dict], str] | None = None
    # A task of lm-evaluation-harness (tasks/harness.py): the harness builds its requests and
    # scores them, on the method's model; `clean`, `prompt` and `score` are then not used.
    harness: Any = None
    # Where its items come from: True, the study's data.source (hub, local folder, synthetic);
    # False, a source its declaration names (the study's data.train, an lm-eval task file).
    study_data: bool = True
    # A hash of what the declaration reads outside this package (an lm-eval YAML, its includes and
    # functions), standing for its code in a step's identity.
    fingerprint: str | None = None

    def metric(self, name: str) -> Metric:
        return next(m for m in self.metrics if m.name == name)

    @property
    def primary(self) -> str:
        return next(m.name for m in self.metrics if m.primary)

    @property
    def local_name(self) -> str:
        """The file stem a local data folder holds this task's data under (name.jsonl, .parquet)."""
        return self.name


# ------------------------------------------------------------------------- shared pieces


def chat_prompt(tokenizer, user_message: str) -> str:
    """The generation prompt of the model's chat template. Thinking is disabled where the
    template has the switch (Qwen3); other templates (SmolLM2's) are rendered as they are."""
    options = {"enable_thinking": False} if "enable_thinking" in (tokenizer.chat_template or "") else {}
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message}], tokenize=False, add_generation_prompt=True, **options
    )


def example_ids(tokenizer, task: Task, row: dict, turn_end: str) -> tuple[list[int], list[int]]:
    """A training row as token ids: the prompt (the chat template's, up to the assistant's turn)
    and the answer, ended as the template ends a turn."""
    user, answer = task.train_example(row)
    prompt = tokenizer(chat_prompt(tokenizer, user), add_special_tokens=False).input_ids
    return prompt, tokenizer(answer + turn_end, add_special_tokens=False).input_ids


def training_ids(tokenizer, task: Task, row: dict, turn_end: str) -> tuple[list[int], list[int]]:
    """A training row as (input ids, labels), the labels -100 where no loss is taken: a
    conversation's assistant turns (train_messages), or a prompt and its answer (train_example)."""
    if task.train_messages is not None:
        from .chat import conversation_ids

        return conversation_ids(tokenizer, task.train_messages(row), turn_end)
    prompt, answer = example_ids(tokenizer, task, row, turn_end)
    return prompt + answer, [-100] * len(prompt) + answer


def text(value: Any) -> str | None:
    """A stripped, non-empty string, or None."""
    return value.strip() if isinstance(value, str) and value.strip() else None


def multiple_choice(loglikelihoods: list[float], texts: list[str], gold: int) -> tuple[dict[str, float], int]:
    """lm-evaluation-harness's acc (argmax of summed log-likelihood) and acc_norm (argmax of it
    divided by the choice's length in characters), and the index acc_norm picks."""
    pick = max(range(len(texts)), key=lambda i: loglikelihoods[i])
    pick_norm = max(range(len(texts)), key=lambda i: loglikelihoods[i] / len(texts[i]))
    return {"acc": float(pick == gold), "acc_norm": float(pick_norm == gold)}, pick_norm


ACC = Metric("acc", True, True, "accuracy of the highest summed log-likelihood choice")
ACC_NORM = Metric(
    "acc_norm", True, True, "accuracy with log-likelihood divided by the choice's length in characters", primary=True
)


# ------------------------------------------------------------------------- the registry


def _check(task: Task) -> None:
    if sum(m.primary for m in task.metrics) != 1:
        raise ValueError(f"task {task.name!r}: exactly one metric must be primary")
    if task.kind == "loglikelihood" and task.choices is None and task.harness is None:
        raise ValueError(f"task {task.name!r}: a log-likelihood task declares its choices")
    if task.kind == "reference" and task.reference is None:
        raise ValueError(f"task {task.name!r}: a reference task declares the reply it scores")
    if task.study_data and task.synthetic is None:
        raise ValueError(f"task {task.name!r}: a task read from the study's data.source needs a synthetic generator")


TASKS: Registry[Task] = Registry("task", _check)
register, get = TASKS.register, TASKS.get
