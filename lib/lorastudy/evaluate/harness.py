"""An lm-eval task evaluated by lm-evaluation-harness itself on the run's model: its evaluator
builds the requests for the documents the data step sampled, runs them through its own HFLM
wrapper around the model lorastudy loaded (the method's adapter and quantized base included),
applies its filters and process_results, and logs each document's scores. Those per-document
scores become lorastudy's per-item predictions, so the statistics, intervals and verdicts apply
to them; for the base model they are the harness's own (tests/evaluate/test_harness.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from ..tasks import Task
from ..tasks.harness import score_key


def run_harness(model, tokenizer, task: Task, rows: list[dict], batch_size: int) -> dict[int, list[dict]]:
    """The harness's per-sample logs (one per document and filter) by doc_id."""
    from lm_eval import evaluator
    from lm_eval.models.huggingface import HFLM

    loaded = task.harness.load()
    name = task.harness.task_name
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    # The harness pairs its nth logged document with the nth id it is given, and logs documents in
    # the dataset's order: the ids go in sorted (the data step's sample keeps the source order).
    ids = sorted(int(r["doc_id"]) for r in rows)
    result = evaluator.evaluate(lm, {"tasks": {name: loaded}}, samples={name: ids}, log_samples=True, bootstrap_iters=0)
    by_doc = defaultdict(list)
    for sample in result["samples"][name]:
        by_doc[int(sample["doc_id"])].append(sample)
    return by_doc


def harness_items(
    model, tokenizer, task: Task, rows: list[dict], batch_size: int, progress: Callable[[int], None]
) -> list[dict]:
    """Each sampled document's prediction: the prompt, the output (the generated text, or the
    choice of highest log-likelihood), the target and every metric's score under every filter."""
    by_doc = run_harness(model, tokenizer, task, rows, batch_size)
    items = []
    for row in rows:
        samples = by_doc[int(row["doc_id"])]
        if not samples or samples[0]["doc_hash"] != row["doc_hash"]:
            raise RuntimeError(
                f"tasks.{task.name}: document {row['doc_id']} of {task.harness.spec} is not the one the data step "
                "sampled: its data changed since; run the study again to redo the data step"
            )
        items.append(_item(task, row, samples))
    progress(len(rows))
    return items


def _item(task: Task, row: dict, samples: list[dict]) -> dict:
    config = task.harness.config
    scores = {score_key(m, s["filter"], config): float(s[m]) for s in samples for m in s["metrics"]}
    first = samples[0]
    arguments, responses, target = first["arguments"], first["filtered_resps"], first["target"]
    item = {"id": row["id"], "question": row["question"], "prompt": arguments[0][0], "filter": first["filter"]}
    if task.kind == "loglikelihood":
        loglikelihoods = [float(r[0]) for r in responses]
        choices = [a[1] for a in arguments]
        pick = max(range(len(choices)), key=lambda i: loglikelihoods[i])
        gold = choices[target] if isinstance(target, int) and 0 <= target < len(choices) else target
        item.update({"choices": choices, "loglikelihoods": loglikelihoods, "output": choices[pick].strip()})
        item.update({"extracted": pick, "references": [str(gold).strip()]})
    else:
        output = responses[0] if isinstance(responses, list) else responses
        item.update({"output": str(output), "extracted": str(output), "references": [str(target)]})
    return {**item, "scores": scores}
