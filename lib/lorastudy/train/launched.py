"""One of the processes `accelerate launch` starts for a training over several processes:
`python -m lorastudy.train.launched PARAMS METHOD SEED`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from ..study.load import load_config
from ..study.paths import StudyPaths
from ..study.runs import find_run
from .distributed import IDENTITY, STEP
from .loop import train


def main(argv: list[str] | None = None) -> int:
    """One of the launched processes: `python -m lorastudy.train.launched PARAMS METHOD SEED`."""
    from accelerate import PartialState

    spec, method, seed = argv if argv is not None else sys.argv[1:]
    # Before the model loads: this starts the process group and makes this process's GPU the current one.
    state = PartialState(cpu=not torch.cuda.is_available())
    cfg = load_config(spec)
    paths = StudyPaths(Path(cfg.root), cfg.study)
    log = print if state.is_main_process else _quiet
    step, identity = os.environ.get(STEP, ""), os.environ.get(IDENTITY, "")
    train(cfg, find_run(cfg, method, int(seed)), paths, log=log, step=step, identity=identity)
    state.wait_for_everyone()
    torch.distributed.destroy_process_group()
    return 0


def _quiet(_: str) -> None:
    """The log of processes other than the first: they train the same steps, which it reports."""


if __name__ == "__main__":
    sys.exit(main())
