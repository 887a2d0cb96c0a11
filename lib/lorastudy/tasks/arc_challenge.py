"""ARC-Challenge, scored by log-likelihood as lm-evaluation-harness scores `arc_challenge`:
the context "Question: ...\\nAnswer:" without a chat template, each choice as a continuation."""

from __future__ import annotations

from collections.abc import Iterable

from . import synthetic
from .declaration import ACC, ACC_NORM, Cleaned, HubSource, Task, multiple_choice, text


def context(question: str) -> str:
    """The harness's doc_to_text for arc_challenge."""
    return f"Question: {question}\nAnswer:"


def clean(rows: Iterable[dict]) -> Cleaned:
    out = Cleaned()
    for row in rows:
        out.loaded += 1
        choices = row.get("choices") or {}
        texts, labels = choices.get("text") or [], choices.get("label") or []
        if not text(row.get("question")) or not row.get("id"):
            out.skip("missing id or question")
        elif len(texts) < 2 or len(texts) != len(labels) or not all(text(t) for t in texts):
            out.skip("missing or malformed choices")
        elif row.get("answerKey") not in labels:
            out.skip("answer key is not one of the choice labels")
        else:
            out.rows.append(
                {
                    "id": str(row["id"]),
                    "question": row["question"].strip(),
                    "choices": {"text": [t.strip() for t in texts], "label": list(labels)},
                    "answerKey": row["answerKey"],
                }
            )
    return out


def score(row: dict, loglikelihoods: list[float]) -> dict:
    texts, labels = row["choices"]["text"], row["choices"]["label"]
    scores, pick = multiple_choice(loglikelihoods, texts, labels.index(row["answerKey"]))
    return {
        "choices": texts,
        "output": labels[pick],
        "extracted": labels[pick],
        "references": [row["answerKey"]],
        "loglikelihoods": loglikelihoods,
        "scores": scores,
    }


TASK = Task(
    name="arc_challenge",
    title="ARC-Challenge",
    version=1,
    kind="loglikelihood",
    metrics=(ACC, ACC_NORM),
    hub=HubSource("allenai/ai2_arc", "test", config="ARC-Challenge", size=1172),
    clean=clean,
    prompt=lambda tokenizer, row: context(row["question"]),
    # The harness's target_delimiter: each choice follows the context after one space.
    choices=lambda row: [" " + c for c in row["choices"]["text"]],
    score=score,
    question=lambda row: row["question"],
    overlap_keys=lambda row: (row["question"], row["question"] + " " + " ".join(row["choices"]["text"])),
    synthetic=synthetic.arc_rows,
)
