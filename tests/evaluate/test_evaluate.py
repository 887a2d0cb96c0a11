"""Evaluation on the built tiny model: the ARC scorer against a direct computation,
generation, and the `lorastudy eval` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lorastudy import tasks
from lorastudy.evaluate.generation import generate
from lorastudy.evaluate.loglikelihood import continuation_tokens, loglikelihoods, score_choices
from lorastudy.evaluate.step import load_for_eval, run_task
from lorastudy.models.loading import load_tokenizer
from lorastudy.study.load import load_config
from lorastudy.tasks import synthetic
from lorastudy.tasks.arc_challenge import context as arc_context
from lorastudy.tasks.openmath import score as score_openmath
from lorastudy.util.files import write_jsonl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model):
    cfg = load_config(ROOT / "params" / "smoke.yaml")
    return load_for_eval(str(tiny_model), cfg.model, None, None), load_tokenizer(str(tiny_model), cfg.model)


def direct_loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """One choice at a time, no padding: log p(continuation tokens | context)."""
    ctx = tokenizer(context, add_special_tokens=False).input_ids
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    cont = whole[len(ctx) :]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([whole])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(float(logprobs[len(ctx) - 1 + i, tok]) for i, tok in enumerate(cont))


def test_continuation_is_the_tail_of_the_whole_encoding(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    ctx, cont = continuation_tokens(tokenizer, "Question: Which is a bird?\nAnswer:", " robin")
    assert tokenizer.decode(cont) == " robin"
    assert ctx + cont == tokenizer("Question: Which is a bird?\nAnswer: robin", add_special_tokens=False).input_ids
    # Trailing whitespace of the context moves to the continuation, as in lm-evaluation-harness.
    ctx2, cont2 = continuation_tokens(tokenizer, "Question: Which is a bird?\nAnswer: ", "robin")
    assert (ctx2, cont2) == (ctx, cont)


@pytest.mark.parametrize(
    "rows",
    [
        synthetic.arc_rows(6, 11),  # one-token choices; includes 1-4 labels (index 4)
        synthetic.arc_science_rows(6, 11),  # choices of several tokens: scored after the shared context
    ],
    ids=["short-choices", "long-choices"],
)
def test_arc_scorer_agrees_with_a_direct_per_choice_computation(model_and_tokenizer, rows):
    model, tokenizer = model_and_tokenizer
    items = score_choices(model, tokenizer, tasks.get("arc_challenge"), rows, batch_size=10, progress=lambda n: None)
    assert [it["id"] for it in items] == [r["id"] for r in rows]
    for row, item in zip(rows, items):
        direct = [
            direct_loglikelihood(model, tokenizer, arc_context(row["question"]), " " + c)
            for c in row["choices"]["text"]
        ]
        assert item["loglikelihoods"] == pytest.approx(direct, abs=1e-4)
        gold = row["choices"]["label"].index(row["answerKey"])
        assert item["scores"]["acc"] == float(max(range(4), key=lambda i: direct[i]) == gold)
        norm = [d / len(c) for d, c in zip(direct, row["choices"]["text"])]
        assert item["scores"]["acc_norm"] == float(max(range(4), key=lambda i: norm[i]) == gold)
        assert item["extracted"] in row["choices"]["label"]


def test_arc_scoring_reads_its_scores_back_once_per_batch(model_and_tokenizer, monkeypatch):
    """Every read of a device tensor from Python waits for the GPU: a batch of requests is
    read back once, not once per request."""
    model, tokenizer = model_and_tokenizer
    reads = []
    for name in ("__float__", "item", "tolist", "cpu", "numpy"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    rows = synthetic.arc_science_rows(4, 11)  # choices of several tokens: both passes run
    requests = [(arc_context(r["question"]), " " + c) for r in rows for c in r["choices"]["text"]]
    scores = loglikelihoods(model, tokenizer, requests)
    assert len(scores) == len(requests) == 16
    assert reads == ["tolist"]


def test_generation_stops_at_stop_strings_and_batches_like_single_items(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = ["Question: Where was Ava Hill born?\nAnswer:", "Problem: Sam has 3 apples. He gets 4 more."]
    batched = generate(model, tokenizer, prompts, 12, ("\n",), batch_size=2)
    single = [generate(model, tokenizer, [p], 12, ("\n",), batch_size=1)[0] for p in prompts]
    assert [b["output"] for b in batched] == [s["output"] for s in single]
    assert all("\n" not in b["output"] and 0 < b["generated_tokens"] <= 12 for b in batched)


def test_run_task_scores_squad_and_openmath(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    squad = run_task(model, tokenizer, "squad", synthetic.squad_rows(4, 2), 4, 8, log=lambda _: None)
    assert squad["n"] == 4 and set(squad["metrics"]) == {"exact_match", "f1"}
    assert 0 <= squad["metrics"]["exact_match"] <= squad["metrics"]["f1"] <= 1
    assert all(set(it) >= {"id", "prompt", "output", "extracted", "references", "scores"} for it in squad["items"])
    rows = [{"id": f"m{i}", **r} for i, r in enumerate(synthetic.openmath_rows(4, 5))]
    math = run_task(model, tokenizer, "openmath", rows, 4, 16, log=lambda _: None)
    assert set(math["metrics"]) <= {"exact_match", "no_answer_rate", "median_abs_error"}
    assert math["items_per_s"] > 0


@pytest.mark.slow
def test_eval_command_writes_the_task_metrics(tiny_model, tmp_path):
    data = tmp_path / "arc.jsonl"
    write_jsonl(data, synthetic.arc_rows(8, 3))
    out = tmp_path / "out.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lorastudy",
            "eval",
            "--model",
            str(tiny_model),
            "--task",
            "arc_challenge",
            "--data",
            str(data),
            "--limit",
            "5",
            "--dtype",
            "float32",
            "--load-in-4bit",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 5 and 0 <= metrics["acc"] <= 1 and 0 <= metrics["acc_norm"] <= 1


def test_eval_command_rejects_bad_input_before_loading(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lorastudy",
            "eval",
            "--model",
            "builtin:tiny-qwen3",
            "--task",
            "squad",
            "--data",
            str(tmp_path / "missing.jsonl"),
            "--limit",
            "0",
            "--out",
            str(tmp_path / "o.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--data: file" in result.stderr and "--limit: must be positive" in result.stderr
    assert "Traceback" not in result.stderr


def test_build_model_command_reuses_the_cached_model(study_root, tiny_model):
    """A model already built is found, not rebuilt (test_real_model runs it for every model)."""
    result = subprocess.run(
        [sys.executable, "-m", "lorastudy", "build-model", "builtin:tiny-qwen3", "--root", str(study_root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{tiny_model.name} (ready in" in result.stdout
    assert "pretraining" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("output", "source", "exact", "no_answer", "error"),
    [
        (r"So 2 + 3 = 5. \boxed{5}", "boxed", 1.0, 0.0, 0.0),
        (r"So 2 + 3 = 5. \boxed{five}", "boxed", 0.0, 1.0, None),
        ("The answer is 7.", "answer_is", 0.0, 0.0, 2.0),
        ("1" * 400, "last_number", 0.0, 1.0, None),  # would be inf: excluded and counted
    ],
)
def test_openmath_items_record_how_the_answer_was_found(output, source, exact, no_answer, error):
    item = score_openmath({"expected_answer": "5"}, output)
    assert item["answer_source"] == source and item["non_finite"] == (len(output) == 400)
    assert item["scores"] == {"exact_match": exact, "no_answer_rate": no_answer, "abs_error": error}
    json.dumps(item, allow_nan=False)  # the predictions file stays standard JSON


def test_a_truncated_solution_without_a_final_answer_counts_as_no_answer():
    cut = "First 12 + 30 = 42, then we multiply 42 by"  # the cut fell on a number that is not the answer
    assert score_openmath({"expected_answer": "42"}, cut)["scores"]["exact_match"] == 1.0  # read as the answer
    truncated = score_openmath({"expected_answer": "42"}, cut, truncated=True)
    assert truncated["answer_source"] == "none" and truncated["scores"]["no_answer_rate"] == 1.0
    assert truncated["scores"]["exact_match"] == 0.0 and truncated["scores"]["abs_error"] is None
    # A final answer stated before the cut still counts.
    boxed = score_openmath({"expected_answer": "42"}, r"So \boxed{42}. To check, 42 - 12", truncated=True)
    assert boxed["answer_source"] == "boxed" and boxed["scores"]["exact_match"] == 1.0
