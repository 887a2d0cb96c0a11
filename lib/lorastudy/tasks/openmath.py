"""OpenMath (nvidia/OpenMathInstruct-2): the training data, and held-out problems from the same
pool scored by exact match of the final numeric answer."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

from . import synthetic
from .answers import Answer, answer_matches, extract_answer, parse_expected_answer
from .declaration import Cleaned, HubSource, Metric, Task, chat_prompt, text

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


def user_message(problem: str) -> str:
    return f"{problem}\n{INSTRUCTION}"


def clean(rows: Iterable[dict]) -> Cleaned:
    out = Cleaned()
    for row in rows:
        out.loaded += 1
        problem, solution = text(row.get("problem")), text(row.get("generated_solution"))
        expected = text(str(row["expected_answer"])) if row.get("expected_answer") is not None else None
        if not problem or not solution or not expected:
            out.skip("missing problem, solution or expected answer")
            continue
        out.rows.append(
            {
                # OpenMathInstruct-2 has no ids: one from the problem's text is the same wherever
                # the row comes in the (shuffled) stream.
                "id": str(row.get("id") or f"openmath-{hashlib.sha1(problem.encode()).hexdigest()[:12]}"),
                "problem": problem,
                "generated_solution": solution,
                "expected_answer": expected,
                "problem_source": row.get("problem_source") or "",
            }
        )
    return out


def score(row: dict, output: str, truncated: bool = False) -> dict:
    """An output cut at the token limit has no final answer unless it stated one (\\boxed{} or
    "the answer is") before the cut: the last number of a truncated solution is wherever the
    cut fell, so it counts as no answer rather than as a wrong one."""
    expected = parse_expected_answer(row["expected_answer"])
    answer = extract_answer(output)
    if truncated and answer.source == "last_number":
        answer = Answer(None, "none")
    error = None if answer.value is None else abs(answer.value - expected)
    return {
        "extracted": answer.value,
        # How the answer was found (boxed, answer_is, last_number, none), so the report can
        # show how often each rule decided; non_finite: a number too large for a float.
        "answer_source": answer.source,
        "non_finite": answer.non_finite,
        "references": [row["expected_answer"]],
        "scores": {
            "exact_match": float(answer_matches(answer, row["expected_answer"])),
            "no_answer_rate": float(answer.value is None),
            "abs_error": error if error is not None and math.isfinite(error) else None,
        },
    }


TASK = Task(
    name="openmath",
    title="OpenMath (held out)",
    version=3,  # 3: an empty \boxed{} is an empty answer, not the last number elsewhere
    kind="generate",
    metrics=(
        Metric("exact_match", True, True, "share of items whose answer matches a reference exactly", primary=True),
        Metric(
            "no_answer_rate",
            False,
            True,
            "share of outputs from which no finite number was read (including a \\boxed{} holding no number)",
        ),
        Metric(
            "median_abs_error",
            False,
            False,
            "median absolute error of the extracted number, over the outputs (items \u00d7 seeds) that "
            "have a finite one",
            aggregation="median",
            test=None,
            item_key="abs_error",
        ),
    ),
    # 1M+ rows: the data step streams the head instead of downloading the whole split.
    hub=HubSource("nvidia/OpenMathInstruct-2", "train_1M", streaming=True),
    clean=clean,
    prompt=lambda tokenizer, row: chat_prompt(tokenizer, user_message(row["problem"])),
    score=score,
    question=lambda row: row["problem"],
    overlap_keys=lambda row: (row["problem"],),
    synthetic=synthetic.openmath_rows,
    default_n=500,
    max_new_tokens=512,
    train_example=lambda row: (user_message(row["problem"]), row["generated_solution"]),
    evaluable=lambda row: parse_expected_answer(row["expected_answer"]) is not None,
    evaluable_note="OpenMath evaluation keeps problems with numeric answers",
)
