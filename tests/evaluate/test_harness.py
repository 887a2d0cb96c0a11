"""lm-eval tasks in a study score each item as lm-evaluation-harness itself scores it: the base
model's per-item scores from lorastudy's data and evaluation steps equal those of the harness run
on its own (`simple_evaluate` with the model's folder, as `lm_eval --model hf` runs), item by item,
for a multiple-choice task and a generation task (with a filter), and for a task whose scores
come from a `process_results` function it names."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lorastudy.data.datasets import prepare
from lorastudy.evaluate.step import evaluate
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run
from lorastudy.tasks.harness import working_dir
from lorastudy.util.files import read_jsonl

pytestmark = pytest.mark.lm_eval

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "lm_eval"

# A generation task scored by a Python function next to its YAML, with two filters (each a score).
SCORED_YAML = """include: _arithmetic.yaml
task: arithmetic_scored
dataset_kwargs:
  data_files:
    test: arithmetic_gen.jsonl
output_type: generate_until
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 8
process_results: !function scoring.process_results
filter_list:
  - name: whole
    filter:
      - function: take_first
  - name: last_number
    filter:
      - function: regex
        regex_pattern: "(-?[0-9]+)"
        group_select: -1
      - function: take_first
metric_list:
  - metric: has_answer
    aggregation: mean
    higher_is_better: true
  - metric: length
    aggregation: mean
    higher_is_better: false
"""

SCORING_PY = """def process_results(doc, results):
    reply = results[0]
    return {"has_answer": float(doc["answer"] in reply), "length": float(len(reply))}
"""


def study(root: Path, model: str, tasks: dict[str, tuple[str, int]]) -> Path:
    lines = "".join(f"  {name}: {{lm_eval: {path}, n: {n}}}\n" for name, (path, n) in tasks.items())
    params = root / "harness.yaml"
    params.write_text(
        f"study: harness\nmethods: [base]\nmodel: {{name: {model}, dtype: float32}}\n"
        f"tasks:\n{lines}eval: {{batch_size: 8, generation_batch_size: 8, latency_items: 2}}\n"
    )
    return params


def harness_alone(model_dir: Path, folder: Path, names: list[str], ids: dict[str, list[int]], batch: int) -> dict:
    """Each task's per-sample logs from the harness run by itself on the model's folder."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    with working_dir(folder):  # relative data_files are read from the working directory
        result = simple_evaluate(
            model="hf",
            model_args=f"pretrained={model_dir},dtype=float32",
            device="cpu",
            tasks=names,
            task_manager=TaskManager(include_defaults=False, include_path=str(folder)),
            samples=ids,
            log_samples=True,
            batch_size=batch,
            bootstrap_iters=0,
        )
    return result["samples"]


def compare(root: Path, model_dir: Path, folder: Path, tasks: dict[str, tuple[str, int]], model: str) -> dict:
    """Run the data and evaluation steps of the base model, then the harness alone on the same
    documents; per task: items compared, items equal (every metric's score and the output)."""
    cfg = load_config(study(root, model, tasks), root=root)
    paths = StudyPaths(root, cfg.study)
    prepare(cfg, paths.data, log=lambda _: None)
    evaluate(cfg, find_run(cfg, "base", 0), paths, log=lambda _: None)
    ours = {name: read_jsonl(paths.predictions("base", name)) for name in tasks}
    harness_names = {name: Path(path).stem for name, (path, _) in tasks.items()}
    ids = {harness_names[n]: [int(it["id"]) for it in items] for n, items in ours.items()}
    theirs = harness_alone(model_dir, folder, list(ids), ids, cfg.eval.batch_size)
    agreement = {}
    for name, items in ours.items():
        logs = theirs[harness_names[name]]
        expected = {}
        for s in logs:
            key = int(s["doc_id"])
            several = len({x["filter"] for x in logs}) > 1
            expected.setdefault(key, {}).update(
                {(f"{m}_{s['filter']}" if several else m): float(s[m]) for m in s["metrics"]}
            )
        first = {int(s["doc_id"]): s for s in logs if s["filter"] == logs[0]["filter"]}
        equal = 0
        for it in items:
            doc = int(it["id"])
            same_scores = it["scores"] == expected[doc]
            same_output = (
                it["loglikelihoods"] == [float(r[0]) for r in first[doc]["filtered_resps"]]
                if "loglikelihoods" in it
                else it["output"] == str(first[doc]["filtered_resps"][0])
            )
            equal += same_scores and same_output
        agreement[name] = {"compared": len(items), "equal": equal, "harness_items": len(expected)}
    return agreement


@pytest.fixture
def lm_eval_folder(tmp_path: Path) -> Path:
    """The example task files, with a third task beside them that names a process_results function."""
    folder = tmp_path / "tasks"
    shutil.copytree(EXAMPLES, folder)
    (folder / "arithmetic_scored.yaml").write_text(SCORED_YAML)
    (folder / "scoring.py").write_text(SCORING_PY)
    return folder


def agreement_on(root: Path, model_dir: Path, model: str, folder: Path, n: int) -> dict:
    tasks = {
        "mc": (str(folder / "arithmetic_mc.yaml"), n),
        "gen": (str(folder / "arithmetic_gen.yaml"), n),
        "scored": (str(folder / "arithmetic_scored.yaml"), n),
    }
    agreement = compare(root, model_dir, folder, tasks, model)
    print(f"agreement with lm-evaluation-harness ({model}):", agreement)
    return agreement


def test_the_base_models_per_item_scores_are_the_harness_own(study_root, tiny_model, lm_eval_folder):
    agreement = agreement_on(study_root, tiny_model, "builtin:tiny-qwen3", lm_eval_folder, 24)
    for name, counts in agreement.items():
        assert counts["compared"] == counts["harness_items"] == 24, name
        assert counts["equal"] == counts["compared"], (name, counts)


@pytest.mark.slow
def test_on_a_real_model_too(study_root, smollm2_model, lm_eval_folder):
    """SmolLM2-135M-Instruct: a real tokenizer, a real model's choices and replies."""
    from conftest import link_models

    link_models(study_root, smollm2_model)
    agreement = agreement_on(study_root, smollm2_model, "builtin:smollm2-135m-instruct", lm_eval_folder, 60)
    for name, counts in agreement.items():
        assert counts["compared"] == counts["harness_items"] == 60, name
        assert counts["equal"] == counts["compared"], (name, counts)
