"""A study's own training data (`data.train` in the messages or prompt_completion format) as a
task: its rows are checked and normalised to conversations, the adapters train on their
assistant turns, and the rows held out are scored for every method by the negative
log-likelihood per token of their last reply (and, where asked, the exact match of a generated
one). The declaration is derived from the study's params, never registered."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache, partial
from pathlib import PurePath
from typing import Any

from ..study.schema import HELD_OUT, TrainDataConfig
from .chat import ROLES, last_reply, reply_prompt
from .declaration import REFERENCE_KEY, Cleaned, HubSource, Metric, Task

NLL = Metric(
    REFERENCE_KEY,
    False,
    False,
    "negative log-likelihood per token of the reference reply (its tokens and the turn end), given the "
    "conversation before it",
    primary=True,
    test="paired_permutation",
)


EXACT_MATCH = Metric(
    "exact_match", True, True, "share of held-out rows whose generated reply equals the reference (whitespace aside)"
)


def _messages_problems(row: dict) -> list[tuple[str, str]]:
    """What keeps a messages row from being a conversation: (field, problem) pairs."""
    if "messages" not in row:
        return [("messages", "no 'messages' key (the messages format needs a list of {role, content} turns)")]
    turns = row["messages"]
    if not isinstance(turns, list) or not turns:
        return [("messages", f"expected a non-empty list of {{role, content}} turns, got {_shown(turns)}")]
    problems = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            problems.append((f"messages[{i}]", f"expected a {{role, content}} mapping, got {_shown(turn)}"))
            continue
        for key in ("role", "content"):
            if key not in turn:
                problems.append((f"messages[{i}]", f"no '{key}'"))
        if "role" in turn and turn["role"] not in ROLES:
            problems.append(
                (f"messages[{i}].role", f"unknown role {_shown(turn['role'])} (expected {', '.join(ROLES)})")
            )
        if "content" in turn and not isinstance(turn["content"], str):
            problems.append((f"messages[{i}].content", f"expected a string, got {_shown(turn['content'])}"))
    if not problems and not any(t["role"] == "assistant" for t in turns):
        problems.append(("messages", "no assistant turn, so nothing to train on or to score"))
    return problems


def _prompt_completion_problems(row: dict) -> list[tuple[str, str]]:
    problems = []
    for key in ("prompt", "completion"):
        if key not in row:
            problems.append((key, f"no '{key}' key (the prompt_completion format needs prompt and completion strings)"))
        elif not isinstance(row[key], str):
            problems.append((key, f"expected a string, got {_shown(row[key])}"))
    return problems


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def conversation(row: dict, fmt: str) -> tuple[list[dict] | None, list[tuple[str, str]]]:
    """A row as its {role, content} turns, or the problems that keep it from being one."""
    if not isinstance(row, dict):
        return None, [("row", f"expected a mapping, got {_shown(row)}")]
    if fmt == "prompt_completion":
        problems = _prompt_completion_problems(row)
        turns = [
            {"role": "user", "content": row.get("prompt")},
            {"role": "assistant", "content": row.get("completion")},
        ]
    else:
        problems = _messages_problems(row)
        turns = row.get("messages")
    if problems:
        return None, problems
    return [{"role": t["role"], "content": t["content"]} for t in turns], []


def clean(rows: Iterable[dict], fmt: str) -> Cleaned:
    """Rows as conversations, each named by its row number in the file (row1, row2, ...). A row
    that is not in the format is a problem (file, row and field named); a conversation with an
    empty turn is skipped and counted."""
    out = Cleaned()
    for number, row in enumerate(rows, start=1):
        out.loaded += 1
        turns, problems = conversation(row, fmt)
        out.problems += [f"row {number}: {field}: {problem}" for field, problem in problems]
        if turns is None:
            continue
        if any(not t["content"].strip() for t in turns):
            out.skip("a turn with empty content")
            continue
        out.rows.append({"id": f"row{number}", "messages": turns})
    return out


def conversation_key(row: dict) -> str:
    """The whole conversation as one text: rows equal in it are duplicates."""
    return "\n".join(f"{t['role']}: {t['content']}" for t in row["messages"])


def asked(row: dict) -> str:
    """What the user asked up to the reply a row is scored on, its user turns in order (system
    turns aside): a held-out row that asks what a training conversation asks overlaps it, while a
    follow-up such as "And that times 2?" after another question does not."""
    before = row["messages"][: last_reply(row["messages"])]
    return "\n".join(t["content"] for t in before if t["role"] == "user")


def question(row: dict) -> str:
    """The turn a reader recognises a held-out row by: the last user turn before its reply."""
    before = row["messages"][: last_reply(row["messages"])]
    users = [t["content"] for t in before if t["role"] == "user"]
    return users[-1] if users else before[-1]["content"] if before else ""


def reference(row: dict) -> str:
    return row["messages"][last_reply(row["messages"])]["content"]


def score(row: dict, output: str, truncated: bool = False) -> dict:
    # A reply cut at the token limit is compared as it stands: it matches only if it was complete.
    ref = reference(row)
    return {
        "extracted": output,
        "references": [ref],
        "scores": {"exact_match": float(" ".join(output.split()) == " ".join(ref.split()))},
    }


def _title(path: str) -> str:
    name = PurePath(path).name or path
    return f"{name} (held out)"


@cache
def declaration(train: TrainDataConfig) -> Task:
    """The task of a study's own data: derived from its data.train, the same in every kernel."""
    return Task(
        name=HELD_OUT,
        title=_title(train.path),
        version=1,
        kind="generate" if train.exact_match else "reference",
        metrics=(NLL, EXACT_MATCH) if train.exact_match else (NLL,),
        hub=HubSource(train.path, train.split),
        clean=partial(clean, fmt=train.format),
        prompt=lambda tokenizer, row: reply_prompt(tokenizer, row["messages"]),
        score=score,
        question=question,
        overlap_keys=lambda row: (conversation_key(row), asked(row)),
        max_new_tokens=train.max_new_tokens,
        train_messages=lambda row: row["messages"],
        reference=reference,
        study_data=False,
    )
