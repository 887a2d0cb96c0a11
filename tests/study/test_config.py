from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lorastudy.study.load import load_config
from lorastudy.study.runs import find_run, runs_of
from lorastudy.study.schema import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
REAL = ROOT / "params" / "qwen3-0.6b.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


MINIMAL = "study: t\ntasks: [openmath]\n"


def problems(path: Path, overrides=None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


def test_shipped_params_files_load():
    smoke, real = load_config(SMOKE), load_config(REAL)
    assert smoke.study == "smoke" and smoke.model.name == "builtin:tiny-qwen3"
    assert real.model.name == "Qwen/Qwen3-0.6B"
    assert real.data.train_samples == 1000 and real.lora.r == 64 and real.lora.alpha == 16
    assert real.lora.dropout == 0.05 and real.train.learning_rate == 2e-4 and real.train.max_grad_norm == 0.3
    assert real.task("arc_challenge").n == 1172
    assert [t.name for t in real.tasks] == ["arc_challenge", "openmath", "squad"]


def test_config_is_frozen():
    cfg = load_config(SMOKE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lora.r = 8  # type: ignore[misc]


def test_unknown_key_is_an_error_naming_it(tmp_path):
    found = problems(write(tmp_path, MINIMAL + "lora:\n  rank: 8\n"))
    assert len(found) == 1 and found[0].startswith("lora.rank: unknown parameter")
    assert "r" in found[0]  # lists the known keys


def test_unknown_top_level_key(tmp_path):
    assert problems(write(tmp_path, MINIMAL + "learning_rate: 0.1\n"))[0].startswith("learning_rate: unknown")


@pytest.mark.parametrize(
    "line, key",
    [
        ("lora:\n  r: eight\n", "lora.r: expected an integer"),
        ("train:\n  learning_rate: fast\n", "train.learning_rate: expected a number"),
        ("train:\n  gradient_checkpointing: 1\n", "train.gradient_checkpointing: expected true or false"),
        ("quant:\n  quant_type: nf3\n", "quant.quant_type: expected one of 'nf4', 'fp4'"),
        ("model:\n  dtype: float8\n", "model.dtype: expected one of"),
        ("seeds: [0, one]\n", "seeds: expected a list of an integer"),
        ("lora: 8\n", "lora: expected a section"),
        ("eval:\n  latency_tokens: 32.5\n", "eval.latency_tokens: expected an integer"),
    ],
)
def test_wrong_type_names_the_key(tmp_path, line, key):
    found = problems(write(tmp_path, MINIMAL + line))
    assert any(p.startswith(key) for p in found), found


@pytest.mark.parametrize(
    "line, key",
    [
        ("lora:\n  r: 0\n", "lora.r: must be positive"),
        ("lora:\n  r: -4\n", "lora.r: must be positive"),
        ("methods: [base, vera]\n", "methods: unknown method 'vera'"),
        ("study: ../../etc\n", "study: '../../etc' is not a safe folder name"),
        ("report:\n  bootstrap_resamples: 100\n", "report.bootstrap_resamples: must be at least 1000"),
        ("lora:\n  dropout: 1.5\n", "lora.dropout: must be in [0, 1)"),
        # TPOT is the decoding steps after the first token: one token leaves none to time.
        ("eval:\n  latency_tokens: 1\n", "eval.latency_tokens: must be at least 2"),
        ("eval:\n  latency_tokens: 0\n", "eval.latency_tokens: must be at least 2"),
    ],
)
def test_impossible_values_name_the_key(tmp_path, line, key):
    text = MINIMAL + line if not line.startswith("study") else line + "tasks: [openmath]\n"
    found = problems(write(tmp_path, text))
    assert any(p.startswith(key) for p in found), found


def test_a_task_of_one_item_is_refused_before_anything_runs(tmp_path):
    # Paired tests and intervals need two items; one is caught at `check`, not in the report.
    found = problems(write(tmp_path, "study: t\ntasks:\n  squad: {n: 1}\n"))
    assert found == [
        "tasks.squad.n: must be at least 2, as paired tests and intervals need two items (or null for the whole split)"
    ]
    assert load_config(write(tmp_path, "study: t\ntasks:\n  squad: {n: 2}\n")).task("squad").n == 2


def test_unknown_task_names_it(tmp_path):
    found = problems(write(tmp_path, "study: t\ntasks:\n  gsm8k: {n: 3}\n"))
    assert found[0].startswith("tasks.gsm8k: unknown task")


def test_every_problem_is_reported_at_once(tmp_path):
    found = problems(write(tmp_path, MINIMAL + "lora:\n  r: 0\n  alpha: x\ntrain:\n  epochs_: 1\n"))
    assert len(found) == 3


def test_scientific_notation_without_a_dot_is_a_number(tmp_path):
    # PyYAML reads 2e-4 as a string; a params file author means a number.
    cfg = load_config(write(tmp_path, MINIMAL + "train:\n  learning_rate: 2e-4\n"))
    assert cfg.train.learning_rate == pytest.approx(2e-4)


def test_overrides_are_validated_like_the_file():
    cfg = load_config(SMOKE, ["train.learning_rate=1e-4", "seeds=[0, 1]", "tasks.squad.n=10"])
    assert cfg.train.learning_rate == pytest.approx(1e-4)
    assert cfg.seeds == (0, 1) and cfg.task("squad").n == 10
    assert problems(SMOKE, ["lora.r=-1"])[0].startswith("lora.r: must be positive")
    assert problems(SMOKE, ["lora.rnak=8"])[0].startswith("lora.rnak: unknown parameter")
    assert problems(SMOKE, ["no-equals-sign"])[0].startswith("override 'no-equals-sign': expected KEY=VALUE")


def test_runs_name_one_folder_per_method_and_seed():
    one = load_config(SMOKE)
    assert [r.name for r in runs_of(one)] == ["base", "lora", "qlora"]
    several = load_config(SMOKE, {"seeds": [0, 1]})
    assert [r.name for r in runs_of(several)] == ["base", "lora_seed0", "lora_seed1", "qlora_seed0", "qlora_seed1"]
    assert find_run(several, "qlora", 1).name == "qlora_seed1"
    with pytest.raises(ConfigError):
        find_run(several, "qlora", 7)
