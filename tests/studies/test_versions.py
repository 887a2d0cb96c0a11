"""The real offline model's study end to end, shrunk: SmolLM2's multi-token ARC choices scored
after their shared context, LoRA and QLoRA trained, generation stopped on its end tokens, the
report rendered. CI runs it (with the fast tests) in every environment of its version matrix:
the newest libraries, the GPU image's (transformers 5.17) and the lower bounds pyproject.toml
declares (scripts/version_matrix.sh)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import link_models

from lorastudy.models.loading import load_tokenizer
from lorastudy.tasks.arc_challenge import context as arc_context

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "params" / "smollm2-135m.yaml"
SHRUNK = [
    *("-p", "seeds=[0]"),  # one run per method: the study's three seeds would triple it
    *("-p", "data.train_samples=16", "-p", "train.max_steps=2", "-p", "train.batch_size=4"),
    *("-p", "tasks.arc_challenge.n=6", "-p", "tasks.openmath.n=6", "-p", "tasks.squad.n=6"),
    *("-p", "tasks.openmath.max_new_tokens=48", "-p", "eval.latency_items=2"),
]


@pytest.mark.slow
@pytest.mark.matrix
def test_a_shrunk_smollm2_study_runs_end_to_end(tmp_path, smollm2_model, tiny_model, run_study):
    root = link_models(tmp_path, smollm2_model, tiny_model)
    done = run_study(PARAMS, root, *SHRUNK)
    versions = {p: importlib.metadata.version(p) for p in ("transformers", "peft", "accelerate", "huggingface_hub")}
    assert done.returncode == 0, f"{versions}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    study = root / "runs" / "smollm2-135m"
    metrics = pd.read_csv(study / "results" / "metrics.csv")
    for method in ("base", "lora", "qlora"):
        shown = set(metrics[metrics.method == method].metric)
        assert {"acc", "acc_norm", "exact_match", "f1"} <= shown, (method, shown)
    # The ARC choices are several tokens long in SmolLM2's tokenizer: the cached second pass ran.
    tokenizer = load_tokenizer(str(smollm2_model), load_config_model())
    items = [json.loads(line) for line in (study / "predictions" / "base" / "arc_challenge.jsonl").open()]
    lengths = [
        len(tokenizer(arc_context(it["question"]) + " " + c, add_special_tokens=False).input_ids)
        - len(tokenizer(arc_context(it["question"]), add_special_tokens=False).input_ids)
        for it in items
        for c in it["choices"]
    ]
    assert max(lengths) > 1
    resources = pd.read_csv(study / "results" / "resources.csv")
    train = resources[resources.phase == "train"].set_index("method")
    assert (train.peak_memory_mb > 0).all() and train.trainable_params["lora"] == train.trainable_params["qlora"] > 0
    assert (root / "rendered" / "smollm2-135m.html").stat().st_size > 10_000


def load_config_model():
    from lorastudy.study.load import load_config

    return load_config(PARAMS).model
