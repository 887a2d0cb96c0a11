from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lorastudy.data.datasets import DataError, normalise_text, prepare, synthetic_sizes
from lorastudy.pipeline.checks import study_problems
from lorastudy.study.load import load_config
from lorastudy.tasks import synthetic
from lorastudy.tasks.answers import parse_expected_answer
from lorastudy.util.files import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def test_synthetic_generators_are_deterministic_and_in_the_real_schemas():
    assert synthetic.openmath_rows(20, 3) == synthetic.openmath_rows(20, 3)
    assert synthetic.openmath_rows(20, 3) != synthetic.openmath_rows(20, 4)
    math_row = synthetic.openmath_rows(1, 0)[0]
    assert set(math_row) == {"problem", "generated_solution", "expected_answer", "problem_source"}
    assert parse_expected_answer(math_row["expected_answer"]) is not None
    assert f"\\boxed{{{math_row['expected_answer']}}}" in math_row["generated_solution"]
    arc = synthetic.arc_rows(10, 0)
    assert set(arc[0]) == {"id", "question", "choices", "answerKey"}
    assert all(r["answerKey"] in r["choices"]["label"] and len(r["choices"]["text"]) == 4 for r in arc)
    assert {"1", "A"} <= {r["choices"]["label"][0] for r in arc}  # both label styles occur
    squad = synthetic.squad_rows(10, 0)
    assert set(squad[0]) == {"id", "title", "context", "question", "answers"}
    for row in squad:  # answers are spans of the passage, as in SQuAD
        for text, start in zip(row["answers"]["text"], row["answers"]["answer_start"]):
            assert row["context"][start : start + len(text)] == text


def test_synthetic_problems_are_distinct():
    rows = synthetic.openmath_rows(500, 1)
    assert len({r["problem"] for r in rows}) == 500


def test_prepare_splits_without_overlap(tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", root=tmp_path)
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None)
    train = read_jsonl(tmp_path / "data" / "train.jsonl")
    held_out = read_jsonl(tmp_path / "data" / "eval" / "openmath.jsonl")
    assert len(train) == cfg.data.train_samples and len(held_out) == cfg.task("openmath").n
    assert not {normalise_text(r["problem"]) for r in train} & {normalise_text(r["problem"]) for r in held_out}
    for name in ("arc_challenge", "openmath", "squad"):
        assert summary["datasets"][name]["overlap_with_train"] == 0
        assert summary["datasets"][name]["eval"] == cfg.task(name).n
    assert json.loads((tmp_path / "data" / "summary.json").read_text()) == summary


def local_study(tmp_path: Path, extra: str = "") -> Path:
    params = tmp_path / "local.yaml"
    params.write_text(
        f"study: local\nmethods: [base]\ndata:\n  source: local\n  local_dir: {tmp_path / 'src'}\n"
        f"  train_samples: 10\ntasks:\n  arc_challenge: {{n: 3}}\n  openmath: {{n: 4}}\n"
        f"  squad: {{n: 2}}\neval:\n  latency_items: 2\n{extra}"
    )
    return params


def write_sources(tmp_path: Path) -> None:
    src = tmp_path / "src"
    math = synthetic.openmath_rows(14, 0)
    math += [
        {"problem": "", "generated_solution": "x", "expected_answer": "1"},  # missing problem
        {"problem": "Name a colour.", "generated_solution": "Red. \\boxed{red}", "expected_answer": "red"},
    ]
    write_jsonl(src / "openmath.jsonl", math)
    arc = synthetic.arc_rows(3, 0) + [
        {"id": "bad1", "question": "Q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "E"},
        {"id": "bad2", "question": "", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"},
    ]
    pd.DataFrame(arc).to_parquet(src / "arc_challenge.parquet")  # Parquet works as well as JSONL
    squad = synthetic.squad_rows(2, 0) + [
        {"id": "s9", "title": "t", "context": "c", "question": "q?", "answers": {"text": [], "answer_start": []}}
    ]
    write_jsonl(src / "squad.jsonl", squad)


def test_local_rows_with_missing_fields_are_skipped_and_counted(tmp_path):
    write_sources(tmp_path)
    cfg = load_config(local_study(tmp_path))
    assert study_problems(cfg) == []
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None)
    d = summary["datasets"]
    assert d["openmath"]["skipped"] == {"missing problem, solution or expected answer": 1}
    assert d["arc_challenge"]["skipped"] == {
        "answer key is not one of the choice labels": 1,
        "missing id or question": 1,
    }
    assert d["squad"]["skipped"] == {"no reference answer": 1}
    # The non-numeric problem may train but is never a held-out item (exact match needs a number).
    held_out = read_jsonl(tmp_path / "data" / "eval" / "openmath.jsonl")
    assert all(parse_expected_answer(r["expected_answer"]) is not None for r in held_out)


def test_asking_for_more_items_than_the_data_has_is_caught_before_loading(tmp_path):
    write_sources(tmp_path)
    cfg = load_config(local_study(tmp_path), {"tasks.squad.n": 50})
    found = study_problems(cfg)
    assert len(found) == 1 and found[0].startswith("tasks.squad.n: asked for 50 items")


def test_a_dataset_left_empty_is_an_error(tmp_path):
    write_sources(tmp_path)
    write_jsonl(
        tmp_path / "src" / "squad.jsonl",
        [{"id": "s", "title": "", "context": "c", "question": "q", "answers": {"text": [""], "answer_start": [0]}}],
    )
    cfg = load_config(local_study(tmp_path), {"tasks.squad.n": None})
    with pytest.raises(DataError, match="tasks.squad: no usable items"):
        prepare(cfg, tmp_path / "data", log=lambda _: None)


def test_evaluation_items_are_a_seeded_random_sample_not_the_head_of_the_split(tmp_path):
    write_sources(tmp_path)
    write_jsonl(tmp_path / "src" / "squad.jsonl", synthetic.squad_rows(60, 0))
    source_ids = [r["id"] for r in synthetic.squad_rows(60, 0)]

    def sampled(seed: int, folder: str) -> list[str]:
        cfg = load_config(local_study(tmp_path), {"tasks.squad.n": 10, "data.seed": seed})
        summary = prepare(cfg, tmp_path / folder, log=lambda _: None)
        assert summary["datasets"]["squad"]["eval"] == 10 and summary["datasets"]["squad"]["sampled_from"] == 60
        return [r["id"] for r in read_jsonl(tmp_path / folder / "eval" / "squad.jsonl")]

    first, again, other = sampled(0, "a"), sampled(0, "b"), sampled(1, "c")
    assert first == again  # the same seed, the same items
    assert first != source_ids[:10] and set(first) != set(other)  # not the head; the seed matters
    assert first == sorted(first, key=source_ids.index)  # kept in the source's order
    held_out = read_jsonl(tmp_path / "a" / "eval" / "openmath.jsonl")
    assert len({r["id"] for r in held_out}) == len(held_out) and all(r["id"].startswith("openmath-") for r in held_out)


def test_the_synthetic_pool_holds_the_training_and_held_out_items_it_is_asked_for(tmp_path):
    cfg = load_config(ROOT / "params" / "smoke.yaml", {"tasks.openmath.n": None}, root=tmp_path)
    sizes = synthetic_sizes(cfg)
    # With n unset, the task's default (500 held-out problems) is what the generator makes room for,
    # beside the training and validation items.
    assert sizes["openmath"] == cfg.data.train_samples + cfg.data.validation_samples + 500
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None)
    assert summary["datasets"]["openmath"]["eval"] == 500 and summary["datasets"]["openmath"]["train"] == 640
    assert summary["datasets"]["openmath"]["validation"] == cfg.data.validation_samples == 64


def test_the_data_step_records_what_each_input_resolved_to_and_later_steps_load_it(tmp_path, tiny_model):
    import hashlib

    from lorastudy.data.datasets import pin_model
    from lorastudy.models.source import identity
    from lorastudy.study.schema import ModelConfig
    from lorastudy.util.files import atomic_write_json

    write_sources(tmp_path)
    cfg = load_config(local_study(tmp_path))
    model = identity(cfg.model, str(tiny_model))
    summary = prepare(cfg, tmp_path / "data", log=lambda _: None, model=model)
    squad = summary["datasets"]["squad"]["revision"]
    assert squad == {
        "resolved": hashlib.sha256((tmp_path / "src" / "squad.jsonl").read_bytes()).hexdigest(),
        "kind": "sha256 of squad.jsonl",
    }
    assert summary["model"]["kind"] == "sha256 of files" and len(summary["model"]["resolved"]) == 64
    assert pin_model(cfg, tmp_path / "data") == cfg  # a local folder is loaded as it is
    # A hub model is pinned to the commit the data step resolved.
    hub = load_config(local_study(tmp_path), {"model.name": "Qwen/Qwen3-0.6B", "model.revision": "main"})
    atomic_write_json(tmp_path / "hub" / "summary.json", {"model": {"kind": "hub commit", "resolved": "abc123"}})
    assert pin_model(hub, tmp_path / "hub").model.revision == "abc123"
    # Offline, a hub id cannot be resolved: recorded as such, not invented.
    offline = identity(ModelConfig(name="Qwen/Qwen3-0.6B"), "Qwen/Qwen3-0.6B")
    assert offline["resolved"] is None and offline["kind"].startswith("unresolved")


def test_a_dataset_left_with_one_item_is_an_error(tmp_path):
    write_sources(tmp_path)
    one = {"id": "s", "title": "", "context": "c", "question": "q", "answers": {"text": ["c"], "answer_start": [0]}}
    write_jsonl(tmp_path / "src" / "squad.jsonl", [one])
    cfg = load_config(local_study(tmp_path), {"tasks.squad.n": None})
    with pytest.raises(DataError, match="tasks.squad: only 1 usable item left after cleaning; paired tests need"):
        prepare(cfg, tmp_path / "data", log=lambda _: None)


def test_the_data_step_records_the_training_examples_lengths_and_warns_when_the_limit_cuts(tmp_path, tiny_model):
    from lorastudy.models.loading import load_tokenizer
    from lorastudy.report.step_summaries import data_section
    from lorastudy.train.loop import build_examples

    cfg = load_config(ROOT / "params" / "smoke.yaml", {"data.max_seq_len": 48}, root=tmp_path)
    tokenizer = load_tokenizer(str(tiny_model), cfg.model)
    warnings = []
    summary = prepare(cfg, tmp_path / "data", log=warnings.append, tokenizer=tokenizer)
    lengths = summary["train_lengths"]
    assert lengths["examples"] == cfg.data.train_samples and lengths["median"] <= lengths["p90"] <= lengths["max"]
    # The same count training sees: examples that the limit truncates.
    full, _ = build_examples(read_jsonl(tmp_path / "data" / "train.jsonl"), tokenizer, 10**6)
    assert lengths["cut"] == sum(len(e["input_ids"]) > 48 for e in full) > 0
    assert lengths["cut_share"] == pytest.approx(lengths["cut"] / lengths["examples"])
    assert lengths["cut_share"] > 0.01 and any("data.max_seq_len (48) cuts" in w for w in warnings)
    assert "**Warning:** more than 1% of the training examples are cut" in data_section(summary)
    roomy = load_config(ROOT / "params" / "smoke.yaml", root=tmp_path)
    fits = prepare(roomy, tmp_path / "roomy", log=warnings.append, tokenizer=tokenizer)["train_lengths"]
    assert fits["cut"] == 0 and "Warning" not in data_section({**summary, "train_lengths": fits})
