"""A study's own training data (`data.train`): chat-format and prompt/completion files read,
checked before any model loads (each problem naming the file, the row and the field), split into
training and held-out rows that never overlap, and trained on their assistant turns only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorastudy import tasks
from lorastudy.data.datasets import prepare
from lorastudy.models.loading import assistant_turn_end, load_tokenizer
from lorastudy.pipeline.checks import study_problems
from lorastudy.report.step_summaries import data_section
from lorastudy.study.load import load_config
from lorastudy.study.schema import HELD_OUT, ModelConfig
from lorastudy.tasks.chat import conversation_ids, reply_prompt
from lorastudy.train.loop import build_examples
from lorastudy.util.files import read_jsonl

ROOT = Path(__file__).resolve().parents[2]


def chat(i: int, system: bool = False, follow_up: bool = False) -> dict:
    turns = [{"role": "user", "content": f"What is {i} plus 1?"}, {"role": "assistant", "content": f"It is {i + 1}."}]
    if system:
        turns.insert(0, {"role": "system", "content": "Answer briefly."})
    if follow_up:
        turns += [{"role": "user", "content": "And doubled?"}, {"role": "assistant", "content": f"{2 * i + 2}."}]
    return {"messages": turns}


def write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def own_study(root: Path, data: str, extra: str = "", train_samples: int = 8) -> Path:
    params = root / "own.yaml"
    params.write_text(
        f"study: own\nmethods: [base, lora]\nmodel: {{name: builtin:tiny-qwen3, dtype: float32}}\n"
        f"data:\n  train_samples: {train_samples}\n  max_seq_len: 128\n  train: {data}\n"
        f"eval: {{latency_task: {HELD_OUT}, latency_items: 2}}\n{extra}"
    )
    return params


def test_a_conversation_trains_on_its_assistant_turns_and_their_turn_ends_only(tiny_model):
    tokenizer = load_tokenizer(str(tiny_model), ModelConfig(name=str(tiny_model)))
    turn_end = assistant_turn_end(tokenizer)
    messages = chat(4, system=True, follow_up=True)["messages"]
    ids, labels = conversation_ids(tokenizer, messages, turn_end)
    trained = tokenizer.decode([t for t, label in zip(ids, labels) if label != -100])
    assert trained == f"It is 5.{turn_end}10.{turn_end}"
    untrained = tokenizer.decode([t for t, label in zip(ids, labels) if label == -100])
    assert "Answer briefly." in untrained and "What is 4 plus 1?" in untrained and "And doubled?" in untrained
    # The held-out prompt is the conversation up to its last reply, ending where the reply starts.
    prompt = reply_prompt(tokenizer, messages)
    assert prompt.endswith("assistant\n") and "And doubled?" in prompt and "10." not in prompt


def test_the_built_in_training_tokenises_as_it_did(tiny_model):
    """OpenMath's examples are a chat prompt and an answer with the turn end, as before data.train."""
    from lorastudy.tasks import chat_prompt, synthetic

    tokenizer = load_tokenizer(str(tiny_model), ModelConfig(name=str(tiny_model)))
    rows = tasks.get("openmath").clean(synthetic.openmath_rows(5, 0)).rows
    examples, dropped = build_examples(rows, tokenizer, 512)
    turn_end = assistant_turn_end(tokenizer)
    for row, example in zip(rows, examples):
        user, answer = tasks.get("openmath").train_example(row)
        prompt = tokenizer(chat_prompt(tokenizer, user), add_special_tokens=False).input_ids
        reply = tokenizer(answer + turn_end, add_special_tokens=False).input_ids
        assert example["input_ids"] == prompt + reply and example["labels"] == [-100] * len(prompt) + reply
    assert dropped == 0


def test_bad_rows_are_problems_naming_the_file_the_row_and_the_field(tmp_path):
    path = write_rows(
        tmp_path / "chat.jsonl",
        [
            chat(1),
            {"conversation": []},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant"}]},
            {"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "yes"}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "no reply"}]},
            {"messages": [{"role": "user", "content": ["hi"]}, {"role": "assistant", "content": "yes"}]},
            {"messages": [{"content": "hi"}, {"role": "assistant", "content": "yes"}]},
        ],
    )
    cfg = load_config(own_study(tmp_path, f"{{path: {path}, format: messages, held_out: 2}}"), root=tmp_path)
    problems = study_problems(cfg)
    expected = [
        "row 2: messages: no 'messages' key",
        "row 3: messages[1]: no 'content'",
        'row 4: messages[0].role: unknown role "bot"',
        "row 5: messages: no assistant turn",
        "row 6: messages[0].content: expected a string",
        "row 7: messages[0]: no 'role'",
    ]
    for text in expected:
        assert any(p.startswith(f"{path}: {text}") for p in problems), (text, problems)
    assert not any("row 1:" in p for p in problems)


def test_prompt_completion_rows_need_both_strings(tmp_path):
    path = write_rows(
        tmp_path / "pc.jsonl", [{"prompt": "2+2?", "completion": "4"}, {"prompt": "3+3?"}, {"completion": 6}]
    )
    cfg = load_config(own_study(tmp_path, f"{{path: {path}, format: prompt_completion, held_out: 2}}"), root=tmp_path)
    problems = study_problems(cfg)
    assert any(p.startswith(f"{path}: row 2: completion: no 'completion' key") for p in problems), problems
    assert any(p.startswith(f"{path}: row 3: prompt: no 'prompt' key") for p in problems), problems
    assert any(p.startswith(f"{path}: row 3: completion: expected a string, got 6") for p in problems), problems


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("empty.jsonl", "\n\n", "has no rows"),
        ("broken.jsonl", json.dumps(chat(1)) + "\n{not json\n", "line 2: not valid JSON"),
        ("list.json", "[]", "has no rows"),
        ("notes.txt", "hello", "is not a .jsonl, .json or .parquet file"),
    ],
)
def test_a_file_that_cannot_be_read_is_a_problem_naming_it(tmp_path, name, content, expected):
    (tmp_path / name).write_text(content)
    cfg = load_config(own_study(tmp_path, f"{{path: {tmp_path / name}, format: messages, held_out: 2}}"), root=tmp_path)
    problems = study_problems(cfg)
    assert any(str(tmp_path / name) in p and expected in p for p in problems), problems


def test_a_missing_file_and_an_unreachable_hub_dataset_are_problems(tmp_path, monkeypatch):
    import datasets

    cfg = load_config(own_study(tmp_path, "{path: data/missing.jsonl, format: messages, held_out: 2}"), root=tmp_path)
    assert study_problems(cfg) == [f"data.train.path: no file {tmp_path / 'data' / 'missing.jsonl'}"]
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    cfg = load_config(
        own_study(tmp_path, "{path: lorastudy-tests/no-such-chats, format: messages, held_out: 2}"), root=tmp_path
    )
    (problem,) = study_problems(cfg)
    assert problem.startswith("data.train.path: hub dataset 'lorastudy-tests/no-such-chats' (split 'train') cannot")
    assert "HF_DATASETS_OFFLINE set" in problem


def test_too_few_rows_for_training_and_held_out_is_a_problem_naming_the_setting(tmp_path):
    path = write_rows(tmp_path / "chat.jsonl", [chat(i) for i in range(6)])
    cfg = load_config(own_study(tmp_path, f"{{path: {path}, format: messages, held_out: 2}}"), root=tmp_path)
    (problem,) = study_problems(cfg)
    assert problem.startswith("data.train_samples: asked for 8 training items") and "4 beside the 2 held out" in problem


def test_held_out_rows_never_train_and_dropped_rows_are_counted(tmp_path, tiny_model):
    rows = [chat(i, system=i % 3 == 0, follow_up=i % 4 == 0) for i in range(14)]
    rows += [chat(2), {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "?"}]}]
    path = write_rows(tmp_path / "chat.jsonl", rows)
    cfg = load_config(own_study(tmp_path, f"{{path: {path}, format: messages, held_out: 4}}"), root=tmp_path)
    assert study_problems(cfg) == [] and cfg.data.train_task == HELD_OUT and cfg.task(HELD_OUT).n == 4
    tokenizer = load_tokenizer(str(tiny_model), ModelConfig(name=str(tiny_model)))
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None, tokenizer=tokenizer)
    train, held_out = (
        read_jsonl(tmp_path / "data" / "train.jsonl"),
        read_jsonl(tmp_path / "data" / "eval" / "held_out.jsonl"),
    )
    assert len(train) == 8 and len(held_out) == 4 and not {r["id"] for r in train} & {r["id"] for r in held_out}
    info = summary["datasets"][HELD_OUT]
    assert info["skipped"] == {"duplicate item": 1, "a turn with empty content": 1} and info["loaded"] == 16
    assert info["revision"]["kind"] == "sha256 of chat.jsonl" and summary["train_lengths"]["examples"] == 8
    section = data_section(summary)
    assert "duplicate item: 1" in section and "a turn with empty content: 1" in section and "chat.jsonl" in section
    examples, dropped = build_examples(train, tokenizer, cfg.data.max_seq_len, cfg=cfg)
    assert len(examples) == 8 and dropped == 0


def test_a_held_out_row_overlaps_training_only_when_it_asks_what_a_training_row_asks(tmp_path):
    """Overlap is on the user's turns up to the scored reply: conversations that end in the same
    follow-up after different questions do not overlap; the same questions with a system turn do."""
    rows = [chat(i, follow_up=True) for i in range(12)]
    path = write_rows(tmp_path / "chat.jsonl", rows)
    cfg = load_config(own_study(tmp_path, f"{{path: {path}, format: messages, held_out: 4}}"), root=tmp_path)
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None)
    assert summary["datasets"][HELD_OUT]["overlap_with_train"] == 0
    write_rows(path, rows + [chat(i, system=True, follow_up=True) for i in range(12)])
    cfg = load_config(
        own_study(tmp_path, f"{{path: {path}, format: messages, held_out: 4}}", train_samples=20), root=tmp_path
    )
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None)

    def users(row: dict) -> list[str]:
        return [t["content"] for t in row["messages"] if t["role"] == "user"]

    trained = [users(r) for r in read_jsonl(tmp_path / "data" / "train.jsonl")]
    twins = sum(users(r) in trained for r in read_jsonl(tmp_path / "data" / "eval" / "held_out.jsonl"))
    assert summary["datasets"][HELD_OUT]["overlap_with_train"] == twins > 0
    assert summary["datasets"][HELD_OUT]["from"] == "data.train"


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_json_and_parquet_files_are_read_as_jsonl_is(tmp_path, suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lorastudy.data import own

    rows = [{"prompt": f"{i}+1?", "completion": str(i + 1)} for i in range(12)]
    path = tmp_path / f"pc{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(rows))
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    cfg = load_config(own_study(tmp_path, f"{{path: {path}, format: prompt_completion, held_out: 2}}"), root=tmp_path)
    assert study_problems(cfg) == [] and own.read_rows(cfg) == rows
