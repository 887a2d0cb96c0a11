"""A training step's checkpoints (train.save_steps) and which one a rerun resumes.

The Trainer writes `checkpoint-N/` (the adapter, the optimizer, the scheduler, the RNG states and
its own state) in the step's folder, `runs/<study>/train/<run>/`. A process killed while it writes
one leaves it half-written, and the Trainer cannot tell: so once a checkpoint is whole (the
Trainer's `on_save`, after it wrote every file) lorastudy writes `lorastudy.json` into it, last,
with the step's identity. A rerun resumes the newest checkpoint that has one with its own identity;
every other checkpoint (half-written, or of another identity: other parameters, code or data) is
removed, never resumed.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..util.files import atomic_write_json

MARKER = "lorastudy.json"


_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class Resume:
    checkpoint: Path | None  # the newest complete checkpoint of this identity; None: start afresh
    removed: tuple[str, ...]  # checkpoints removed, each with why
    elapsed_s: float = 0.0  # training time up to that checkpoint, over the earlier attempts


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def _marker(checkpoint: Path) -> dict | None:
    try:
        return json.loads((checkpoint / MARKER).read_text())
    except (OSError, ValueError):
        return None


def find_resumable(folder: Path, identity: str) -> Resume:
    """The checkpoint a training of `identity` resumes from, after removing those it must not."""
    chosen, removed = None, []
    for _, path in _checkpoints(folder):
        marker = _marker(path)
        if chosen is None and marker is not None and marker.get("identity") == identity:
            chosen = (path, float(marker.get("elapsed_s", 0.0)))
            continue
        if chosen is not None and marker is not None and marker.get("identity") == identity:
            continue  # an older checkpoint of this run: the Trainer's rotation removes it
        why = "half-written" if marker is None else "of another identity"
        removed.append(f"{path.name} ({why})")
        shutil.rmtree(path, ignore_errors=True)
    if chosen is None:
        return Resume(None, tuple(removed))
    return Resume(chosen[0], tuple(removed), chosen[1])


def mark_complete(checkpoint: Path, identity: str, step: int, elapsed_s: float) -> None:
    """Written last, once the Trainer has written every file of the checkpoint."""
    atomic_write_json(checkpoint / MARKER, {"identity": identity, "step": step, "elapsed_s": elapsed_s})


def finish(folder: Path, keep: bool) -> None:
    """When the training step has written its outputs: its checkpoints go, unless kept."""
    if keep or not folder.is_dir():
        return
    shutil.rmtree(folder, ignore_errors=True)
