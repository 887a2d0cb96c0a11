"""The evaluation items of an lm-eval task: a seeded random sample of the harness's own evaluation
documents (its test split, else its validation split, after its process_docs), each recorded with
its index (the harness's doc_id), the document, the harness's hash of it, and the prompt the
harness builds for it, so the evaluation step can ask the harness for exactly these documents
and check that they are still the same."""

from __future__ import annotations

import hashlib
import json

from ..tasks import Task
from ..util.files import sha256_file


def doc_hash(doc: dict) -> str:
    """The harness's own hash of a document (its per-sample logs carry it as doc_hash)."""
    from lm_eval.utils import handle_non_serializable, hash_string

    return hash_string(json.dumps(doc, indent=2, default=handle_non_serializable, ensure_ascii=False))


def prompts(loaded, ids: list[int]) -> dict[int, str]:
    """The context of each document's first request, as the harness builds it for these documents
    (few-shot examples included, drawn as its evaluator draws them for the same sample)."""
    loaded.build_all_requests(samples=ids, rank=0, world_size=1)
    out: dict[int, str] = {}
    for instance in loaded.instances:
        out.setdefault(ids[instance.doc_id], instance.args[0])
    return out


def load(task: Task):
    """The harness's task object with its data; an error the harness raises names the task."""
    try:
        return task.harness.load()
    except Exception as exc:  # the harness's own error: its dataset, its YAML's functions
        raise ValueError(f"tasks.{task.name}.lm_eval: lm-eval could not load {task.harness.spec}: {exc}") from None


def rows_for(loaded, ids: list[int]) -> list[dict]:
    """The evaluation items of these documents (by index in the harness's evaluation documents)."""
    docs, contexts = loaded.eval_docs, prompts(loaded, ids)
    return [
        {
            "id": str(i),
            "doc_id": i,
            "doc": json.loads(json.dumps(docs[i], default=str)),
            "doc_hash": doc_hash(docs[i]),
            "prompt": contexts[i],
            "question": contexts[i],
        }
        for i in ids
    ]


def harness_identity(task: Task) -> dict:
    """What an lm-eval task's data resolved to: the SHA-256 of its local data files, or its hub
    dataset's commit."""
    files = task.harness.data_files()
    if files:
        digest = hashlib.sha256()
        for path in files:
            sha256_file(path, digest)
        return {"resolved": digest.hexdigest(), "kind": "sha256 of " + ", ".join(p.name for p in files)}
    import datasets

    config = task.harness.config
    revision = (config.get("dataset_kwargs") or {}).get("revision")
    try:
        builder = datasets.load_dataset_builder(
            config.get("dataset_path"), config.get("dataset_name"), revision=revision
        )
        return {"requested": revision or "main", "resolved": builder.hash, "kind": "hub commit"}
    except Exception as exc:  # recorded, not fatal: the data itself has loaded
        return {"requested": revision or "main", "resolved": None, "kind": f"unresolved ({str(exc)[:200]})"}
