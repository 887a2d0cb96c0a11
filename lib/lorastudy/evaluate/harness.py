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


def recording_lm(model, tokenizer, batch_size: int):
    """The harness's HFLM around the loaded model, recording the tokens each generation produced
    (by the context's token ids), so that lorastudy can count outputs that ran to the token limit;
    what the harness computes is left as it is."""
    from lm_eval.models.huggingface import HFLM

    class RecordingLM(HFLM):
        def _model_generate(self, context, max_length, stop, **generation_kwargs):
            out = super()._model_generate(context, max_length, stop, **generation_kwargs)
            mask = generation_kwargs.get("attention_mask")
            for row in range(out.shape[0]):
                ids = context[row][mask[row].bool()] if mask is not None else context[row]
                self.generated[tuple(ids.tolist())] = (out[row, context.shape[1] :].tolist(), list(stop))
            return out

    lm = RecordingLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    lm.generated = {}
    return lm


def generation_counts(lm, context: str, max_gen_toks: int) -> dict:
    """How many tokens the harness generated for a context before an end token or a stop string,
    and whether it ran to the limit without either; {} if the generation was not recorded."""
    ids, _ = lm.tok_batch_encode([context], left_truncate_len=lm.max_length - max_gen_toks, truncation=lm.truncation)
    recorded = lm.generated.get(tuple(ids[0].tolist()))
    if recorded is None:
        return {}
    new, stops = recorded
    ends = {lm.eot_token_id, lm.tokenizer.pad_token_id}
    end_at = next((k for k, token in enumerate(new) if token in ends), None)
    if end_at is not None:
        return {"generated_tokens": end_at + 1, "hit_token_limit": False}
    for k in range(1, len(new) + 1):
        if any(stop in lm.tok_decode(new[:k]) for stop in stops):
            return {"generated_tokens": k, "hit_token_limit": False}
    return {"generated_tokens": len(new), "hit_token_limit": True}


def run_harness(model, tokenizer, task: Task, rows: list[dict], batch_size: int) -> tuple[dict[int, list[dict]], dict]:
    """The harness's per-sample logs (one per document and filter) by doc_id, and for a generation
    task each document's generation counts."""
    from lm_eval import evaluator

    loaded = task.harness.load()
    name = task.harness.task_name
    lm = recording_lm(model, tokenizer, batch_size)
    # The harness pairs its nth logged document with the nth id it is given, and logs documents in
    # the dataset's order: the ids go in sorted (the data step's sample keeps the source order).
    ids = sorted(int(r["doc_id"]) for r in rows)
    result = evaluator.evaluate(lm, {"tasks": {name: loaded}}, samples={name: ids}, log_samples=True, bootstrap_iters=0)
    by_doc = defaultdict(list)
    for sample in result["samples"][name]:
        by_doc[int(sample["doc_id"])].append(sample)
    counts = {}
    if task.kind == "generate":
        for doc_id, samples in by_doc.items():
            context, kwargs = samples[0]["arguments"][0]
            counts[doc_id] = generation_counts(lm, context, int(kwargs.get("max_gen_toks", lm.max_gen_toks)))
    return by_doc, counts


def harness_items(
    model, tokenizer, task: Task, rows: list[dict], batch_size: int, progress: Callable[[int], None]
) -> list[dict]:
    """Each sampled document's prediction: the prompt, the output (the generated text, or the
    choice of highest log-likelihood), the target and every metric's score under every filter."""
    by_doc, counts = run_harness(model, tokenizer, task, rows, batch_size)
    items = []
    for row in rows:
        samples = by_doc[int(row["doc_id"])]
        if not samples or samples[0]["doc_hash"] != row["doc_hash"]:
            raise RuntimeError(
                f"tasks.{task.name}: document {row['doc_id']} of {task.harness.spec} is not the one the data step "
                "sampled: its data changed since; run the study again to redo the data step"
            )
        items.append({**_item(task, row, samples), **counts.get(int(row["doc_id"]), {})})
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
