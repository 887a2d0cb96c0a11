"""SQuAD v1.1: a short answer generated with the chat template, scored by the official v1.1
exact match and F1 (best over the reference answers)."""

from __future__ import annotations

from collections.abc import Iterable

from . import synthetic
from .declaration import Cleaned, HubSource, Metric, Task, chat_prompt, text
from .metrics import squad_em, squad_f1

INSTRUCTION = "Answer the question with a short span copied from the passage. Reply with the answer only."


def user_message(context: str, question: str) -> str:
    return f"{INSTRUCTION}\n\nPassage: {context}\n\nQuestion: {question}"


def clean(rows: Iterable[dict]) -> Cleaned:
    out = Cleaned()
    for row in rows:
        out.loaded += 1
        answers = row.get("answers") or {}
        texts = [t for t in (answers.get("text") or []) if text(t)]
        if not row.get("id") or not text(row.get("context")) or not text(row.get("question")):
            out.skip("missing id, context or question")
        elif not texts:
            out.skip("no reference answer")
        else:
            starts = list(answers.get("answer_start") or [])[: len(texts)]
            out.rows.append(
                {
                    "id": str(row["id"]),
                    "title": row.get("title") or "",
                    "context": row["context"],
                    "question": row["question"].strip(),
                    "answers": {"text": texts, "answer_start": starts},
                }
            )
    return out


def score(row: dict, output: str, truncated: bool = False) -> dict:
    # An answer cut at the token limit is scored as it stands: the first tokens of a span
    # still overlap the reference, as the official script would score them.
    refs = row["answers"]["text"]
    return {
        "extracted": output,
        "references": refs,
        "scores": {"exact_match": squad_em(output, refs), "f1": squad_f1(output, refs)},
    }


TASK = Task(
    name="squad",
    title="SQuAD v1.1",
    version=1,
    kind="generate",
    metrics=(
        Metric("exact_match", True, True, "share of items whose answer matches a reference exactly"),
        Metric(
            "f1",
            True,
            True,
            "token-overlap F1 after SQuAD normalisation, best reference",
            primary=True,
            test="paired_permutation",
        ),
    ),
    hub=HubSource("rajpurkar/squad", "validation", size=10570),
    clean=clean,
    prompt=lambda tokenizer, row: chat_prompt(tokenizer, user_message(row["context"], row["question"])),
    score=score,
    question=lambda row: row["question"],
    overlap_keys=lambda row: (row["question"], row["context"] + " " + row["question"]),
    synthetic=synthetic.squad_rows,
    max_new_tokens=32,
    stop_strings=("\n",),
)
