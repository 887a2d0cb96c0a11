"""Where a study's steps write: the layout of runs/<study>/ and rendered/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StudyPaths:
    """Where a study's outputs live: runs/<study>/... and rendered/<study>.*"""

    root: Path
    study: str

    @property
    def run_dir(self) -> Path:
        return self.root / "runs" / self.study

    @property
    def data(self) -> Path:
        return self.run_dir / "data"

    def adapter(self, run_name: str) -> Path:
        return self.run_dir / "adapters" / run_name

    def train_json(self, run_name: str) -> Path:
        return self.run_dir / "train" / f"{run_name}.json"

    def loss_csv(self, run_name: str) -> Path:
        return self.run_dir / "train" / f"{run_name}.loss.csv"

    def checkpoints(self, run_name: str) -> Path:
        """The training step's folder: its Trainer checkpoints, while it runs or when kept."""
        return self.run_dir / "train" / run_name

    @property
    def tracking(self) -> Path:
        """What the trackers wrote (tensorboard/<run>/, mlflow/), when train.report_to names them."""
        return self.run_dir / "tracking"

    def predictions(self, run_name: str, task: str) -> Path:
        return self.run_dir / "predictions" / run_name / f"{task}.jsonl"

    def eval_json(self, run_name: str) -> Path:
        return self.run_dir / "eval" / f"{run_name}.json"

    @property
    def quantization(self) -> Path:
        """Each linear layer's error and stored bytes in each quantization format (01_quantization)."""
        return self.run_dir / "quantization"

    @property
    def results(self) -> Path:
        return self.run_dir / "results"

    @property
    def notebooks(self) -> Path:
        return self.run_dir / "notebooks"

    @property
    def steps(self) -> Path:
        return self.run_dir / "steps"

    @property
    def rendered(self) -> Path:
        return self.root / "rendered"

    @property
    def models(self) -> Path:
        """Built models shared by every study (the offline tiny base)."""
        return self.root / "runs" / "_models"
