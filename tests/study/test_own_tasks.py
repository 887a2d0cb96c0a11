"""The params that declare a study's own data and tasks are validated like the rest: every problem
at once, each naming its key, before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lorastudy import tasks
from lorastudy.study.load import load_config
from lorastudy.study.schema import HELD_OUT, ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "lm_eval"


def problems(tmp_path: Path, body: str) -> list[str]:
    params = tmp_path / "p.yaml"
    params.write_text("study: own\nmethods: [base]\n" + body)
    with pytest.raises(ConfigError) as caught:
        load_config(params, root=tmp_path)
    return caught.value.problems


@pytest.mark.lm_eval
def test_the_example_study_derives_its_tasks_from_its_params():
    cfg = load_config(ROOT / "params" / "your-data.yaml", root=ROOT)
    assert cfg.data.train_task == HELD_OUT and [t.name for t in cfg.tasks] == [
        "arithmetic_mc",
        "arithmetic_gen",
        HELD_OUT,
    ]
    held_out, mc, gen = (tasks.get(n, cfg) for n in (HELD_OUT, "arithmetic_mc", "arithmetic_gen"))
    assert [(m.name, m.higher_is_better, m.primary) for m in held_out.metrics] == [
        ("nll_per_token", False, True),
        ("exact_match", True, False),
    ]
    assert mc.kind == "loglikelihood" and [m.name for m in mc.metrics] == ["acc", "acc_norm"]
    assert all(m.test == "mcnemar_exact" and m.is_fraction for m in (*mc.metrics, *gen.metrics))
    assert gen.kind == "generate" and gen.max_new_tokens == 16 and gen.stop_strings == ("\n", "Question:")
    # Derived, not registered: another study does not see them.
    assert not tasks.known(HELD_OUT) and not tasks.known("arithmetic_mc") and tasks.known("arithmetic_mc", cfg)


def test_own_data_settings_that_do_not_fit_name_their_key(tmp_path):
    found = problems(
        tmp_path,
        "data:\n  train_task: squad\n  train: {path: x.jsonl, format: messages, held_out: 1, max_new_tokens: 0}\n"
        "tasks:\n  held_out: {n: 3}\n  squad: {n: 2}\n",
    )
    for key in (
        "data.train.held_out: must be 0 or at least 2",
        "data.train.max_new_tokens",
        "data.train_task: 'squad'",
    ):
        assert any(p.startswith(key) for p in found), (key, found)
    assert any(p.startswith("tasks.held_out: the rows data.train.held_out keeps out") for p in found), found
    found = problems(tmp_path, "data:\n  train: {path: x.jsonl, held_out: 5}\ntasks: [openmath]\n")
    assert found == [
        "data.train.held_out: the openmath format holds out its evaluation problems as tasks.openmath.n; held_out "
        "and exact_match are for the messages and prompt_completion formats"
    ]
    found = problems(tmp_path, "data:\n  train: {path: x.jsonl, format: chat, exact_match: true}\n")
    assert any(p.startswith("data.train.format: expected one of") for p in found), found
    found = problems(tmp_path, "data:\n  train: {path: x.jsonl, format: messages, exact_match: true}\n")
    assert "data.train.exact_match: needs data.train.held_out rows to generate replies for" in found


@pytest.mark.lm_eval
def test_lm_eval_tasks_that_cannot_be_evaluated_per_item_name_their_key(tmp_path):
    (tmp_path / "rolling.yaml").write_text("task: rolling\ndataset_path: json\noutput_type: loglikelihood_rolling\n")
    (tmp_path / "bleu.yaml").write_text(
        "task: bleu_task\ndataset_path: json\noutput_type: generate_until\nmetric_list:\n  - metric: bleu\n"
    )
    (tmp_path / "broken.yaml").write_text("task: broken\ninclude: nowhere.yaml\n")
    # Refused by the harness's evaluator only when the evaluation runs: here, before anything trains.
    (tmp_path / "image.yaml").write_text("task: image\ndataset_path: json\ndoc_to_image: [image]\n")
    (tmp_path / "code.yaml").write_text("task: code\ndataset_path: json\nunsafe_code: true\n")
    (tmp_path / "own_metric.yaml").write_text(
        "task: own_metric\ndataset_path: json\nmetric_list:\n  - metric: !function scoring.score\n"
        "    aggregation: mean\n"
    )
    found = problems(
        tmp_path,
        "tasks:\n  r: {lm_eval: rolling.yaml}\n  b: {lm_eval: bleu.yaml}\n  x: {lm_eval: broken.yaml}\n"
        "  i: {lm_eval: image.yaml}\n  c: {lm_eval: code.yaml}\n  f: {lm_eval: own_metric.yaml}\n"
        "  m: {lm_eval: missing.yaml}\n  n: {lm_eval: no_such_lm_eval_task}\n"
        f"  squad: {{lm_eval: {EXAMPLES / 'arithmetic_mc.yaml'}}}\n"
        f"  g: {{lm_eval: {EXAMPLES / 'arithmetic_gen.yaml'}, max_new_tokens: 4}}\n  unknown: {{n: 3}}\n",
    )
    expected = [
        "tasks.r.lm_eval: output_type 'loglikelihood_rolling' is not supported",
        "tasks.b.lm_eval: metric_list: bleu aggregates by 'bleu', not by a mean over items",
        f"tasks.x.lm_eval: {tmp_path / 'broken.yaml'}: not an lm-eval task file the harness can read",
        "tasks.i.lm_eval: doc_to_image: a multimodal task is not supported",
        "tasks.c.lm_eval: unsafe_code: a task the harness marks unsafe (it runs generated code) is not supported",
        "tasks.f.lm_eval: metric_list: !function scoring.score is not a metric name (a metric defined in Python",
        f"tasks.m.lm_eval: no file {tmp_path / 'missing.yaml'}",
        f"tasks.n.lm_eval: no file {tmp_path / 'no_such_lm_eval_task'}, and no task of that name in lm-eval's own",
        "tasks.squad: the name of a built-in task",
        "tasks.g.max_new_tokens: an lm-eval task's limit is its generation_kwargs' max_gen_toks",
        "tasks.unknown: unknown task",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)
    assert len(found) == len(expected), found


@pytest.mark.lm_eval
def test_a_task_lm_eval_ships_is_found_by_its_name(tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text("study: own\nmethods: [base]\ntasks:\n  easy: {lm_eval: arc_easy, n: 20}\n")
    cfg = load_config(params, root=tmp_path)
    easy = tasks.get("easy", cfg)
    assert easy.kind == "loglikelihood" and [m.name for m in easy.metrics] == ["acc", "acc_norm"]
    assert easy.harness.shipped and easy.harness.yaml_path.name == "arc_easy.yaml" and easy.hub.id == "allenai/ai2_arc"


def test_without_the_harness_installed_the_extra_is_named(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import lm_eval now raises ImportError
    found = problems(tmp_path, f"tasks:\n  mc: {{lm_eval: {EXAMPLES / 'arithmetic_mc.yaml'}}}\n")
    assert found == [
        "tasks.mc.lm_eval: needs lm-evaluation-harness: make install EXTRAS=lm_eval (or pip install "
        "'lm-eval[hf]==0.4.13')"
    ]
