"""Checkpoints and resume: a training stopped at any point resumes from its last complete
checkpoint of its own identity and ends with the curve of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import as_in_the_foreground, link_models

from lorastudy.train import checkpoints
from lorastudy.util.files import read_json

ROOT = Path(__file__).resolve().parents[2]

# A training of 16 steps with the validation loss every 4 (and, but for the uninterrupted run, a
# checkpoint every 2), on the tiny model, QLoRA: its 4-bit layers are the ones with state to lose.
OVERRIDES = {
    "data.train_samples": 64,
    "data.validation_samples": 8,
    "train.max_steps": 16,
    "train.batch_size": 4,
    "train.logging_steps": 1,
    "train.eval_steps": 4,
}

TRAIN = """
import sys
from pathlib import Path
from lorastudy.data.datasets import prepare
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import find_run
from lorastudy.train.loop import train

root, method, identity, save_steps = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = load_config("{smoke}", {{**{overrides!r}, "train.save_steps": save_steps}}, root=root)
paths = StudyPaths(root, cfg.study)
if not (paths.data / "summary.json").is_file():
    prepare(cfg, paths.data, log=lambda _: None)
train(cfg, find_run(cfg, method, 0), paths, log=lambda line: print(line, flush=True),
      step="02_train-" + method, identity=identity)
"""


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(TRAIN.format(smoke=ROOT / "params" / "smoke.yaml", overrides=OVERRIDES))
    return script


def _train(script: Path, root: Path, method: str, save_steps: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    command = [sys.executable, str(script), str(root), method, "A", str(save_steps)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _stop_after_checkpoint(script: Path, root: Path, method: str, how: int, after_step: int) -> None:
    """Start a training and stop it with `how` once a checkpoint at `after_step` or later is whole."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "lib")}
    folder = root / "runs" / "smoke" / "train" / method
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), method, "A", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=as_in_the_foreground,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        marked = [int(p.parent.name.split("-")[1]) for p in folder.glob(f"checkpoint-*/{checkpoints.MARKER}")]
        if marked and max(marked) >= after_step:
            proc.send_signal(how)
            break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert proc.returncode != 0, "the training finished before it could be stopped"
    assert not (root / "runs" / "smoke" / "train" / f"{method}.json").exists()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_model):
    root = link_models(tmp_path_factory.mktemp("whole"), tiny_model)
    script = _script(root)
    result = _train(script, root, "qlora", save_steps=0)  # no checkpoints at all: they must change nothing
    assert result.returncode == 0, result.stderr[-3000:]
    return pd.read_csv(root / "runs" / "smoke" / "train" / "qlora.loss.csv")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["killed", "sigterm", "ctrl-c"])
def test_a_stopped_training_resumes_from_its_checkpoint_with_the_same_losses(uninterrupted, tmp_path, tiny_model, how):
    root = link_models(tmp_path, tiny_model)
    script = _script(root)
    _stop_after_checkpoint(script, root, "qlora", how, after_step=6)
    result = _train(script, root, "qlora")
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = [line for line in result.stdout.splitlines() if line.startswith("resuming 02_train-qlora")]
    assert resumed and "from checkpoint-" in resumed[0], result.stdout[-2000:]
    record = read_json(root / "runs" / "smoke" / "train" / "qlora.json")
    assert record["resumed_from"] == resumed[0].split()[-1]
    losses = pd.read_csv(root / "runs" / "smoke" / "train" / "qlora.loss.csv")
    assert list(losses.step) == list(uninterrupted.step) == list(range(1, 17))
    pd.testing.assert_series_equal(losses.loss, uninterrupted.loss, rtol=1e-6)
    pd.testing.assert_series_equal(losses.validation_loss, uninterrupted.validation_loss, rtol=1e-6)
    assert losses.validation_loss.notna().sum() == 4  # steps 4, 8, 12 and 16
    # Removed once the step has written its outputs (train.keep_checkpoints is false).
    assert not (root / "runs" / "smoke" / "train" / "qlora").exists()


def _fake_checkpoint(folder: Path, step: int, identity: str | None) -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(b"x")
    if identity is not None:
        checkpoints.mark_complete(path, identity, step, elapsed_s=float(step))
    return path


def test_only_a_whole_checkpoint_of_the_same_identity_is_resumed(tmp_path):
    _fake_checkpoint(tmp_path, 4, "A")
    _fake_checkpoint(tmp_path, 6, "A")
    _fake_checkpoint(tmp_path, 8, None)  # killed while the Trainer wrote it
    resume = checkpoints.find_resumable(tmp_path, "A")
    assert resume.checkpoint == tmp_path / "checkpoint-6" and resume.elapsed_s == 6.0
    assert resume.removed == ("checkpoint-8 (half-written)",) and not (tmp_path / "checkpoint-8").exists()


def test_a_checkpoint_of_another_identity_is_removed_not_resumed(tmp_path):
    _fake_checkpoint(tmp_path, 4, "A")
    resume = checkpoints.find_resumable(tmp_path, "B")
    assert resume.checkpoint is None and resume.removed == ("checkpoint-4 (of another identity)",)
    assert not (tmp_path / "checkpoint-4").exists()


def test_checkpoints_are_removed_at_the_end_unless_kept(tmp_path):
    _fake_checkpoint(tmp_path / "kept", 2, "A")
    checkpoints.finish(tmp_path / "kept", keep=True)
    assert (tmp_path / "kept" / "checkpoint-2").is_dir()
    checkpoints.finish(tmp_path / "kept", keep=False)
    assert not (tmp_path / "kept").exists()
