"""A held-out row of a study's own data is scored by the negative log-likelihood per token of its
last reply given the conversation before it: the same number as a plain forward pass gives."""

from __future__ import annotations

import torch

from lorastudy.evaluate.replies import reference_scores
from lorastudy.evaluate.step import run_task
from lorastudy.models.loading import assistant_turn_end, load_model, load_tokenizer
from lorastudy.study.schema import ModelConfig, TrainDataConfig
from lorastudy.tasks import user_data


def rows() -> list[dict]:
    conversations = [
        [{"role": "user", "content": "What is 2 plus 2?"}, {"role": "assistant", "content": "2 plus 2 is 4."}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 3 times 3?"},
            {"role": "assistant", "content": "9."},
            {"role": "user", "content": "And plus 1?"},
            {"role": "assistant", "content": "9 plus 1 is 10."},
        ],
        [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}],
    ]
    return [{"id": f"row{i}", "messages": m} for i, m in enumerate(conversations, start=1)]


def test_the_reference_reply_is_scored_by_its_log_likelihood_per_token(tiny_model):
    model_cfg = ModelConfig(name=str(tiny_model), dtype="float32")
    tokenizer, model = load_tokenizer(str(tiny_model), model_cfg), load_model(str(tiny_model), model_cfg).eval()
    task = user_data.declaration(TrainDataConfig(path="chat.jsonl", format="messages", held_out=3))
    scored = reference_scores(model, tokenizer, task, rows(), batch_size=2, progress=lambda n: None)
    turn_end = assistant_turn_end(tokenizer)
    for row, got in zip(rows(), scored):
        prompt = tokenizer(task.prompt(tokenizer, row), add_special_tokens=False).input_ids
        reply = tokenizer(row["messages"][-1]["content"] + turn_end, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = model(torch.tensor([prompt + reply])).logits[0].float()
        logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
        expected = -logprobs[torch.arange(len(reply)), torch.tensor(reply)].mean().item()
        assert got["reference_tokens"] == len(reply)
        assert abs(got["nll_per_token"] - expected) < 1e-4, (got, expected)
    # Through the evaluation of a task: a per-item score, lower is better, the reply as the reference.
    result = run_task(model, tokenizer, task, rows(), 2, log=lambda _: None)
    assert [it["scores"]["nll_per_token"] for it in result["items"]] == [s["nll_per_token"] for s in scored]
    assert result["items"][1]["references"] == ["9 plus 1 is 10."] and result["items"][1]["question"] == "And plus 1?"
    assert result["metrics"]["nll_per_token"] > 0
