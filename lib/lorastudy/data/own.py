"""A study's own training data (`data.train`): a local JSONL, JSON or Parquet file, or a hub
dataset, read as rows and checked before any model loads. A problem names the file, the row and
the field; an unreadable or empty file and a hub dataset that cannot be reached are problems too.

Local files are read with json and pyarrow rather than through `datasets`: its JSON loader
unifies the rows into one Arrow schema first, so a row with a missing key or a turn of another
type comes out filled with nulls or as an Arrow error about columns, not as the row it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..study.schema import StudyConfig
from ..util.files import sha256_file

FILE_SUFFIXES = (".jsonl", ".json", ".parquet")


class OwnDataError(ValueError):
    """Data a study names that cannot be read; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def source(cfg: StudyConfig) -> Path | str:
    """The file data.train names (resolved against the study's root), or its hub dataset id."""
    path = cfg.data.train.path
    local = cfg.resolve(path)
    if local.is_file() or path.endswith(FILE_SUFFIXES) or path.startswith((".", "/", "~")):
        return local
    return path


def read_file(path: Path) -> list[dict]:
    """A JSONL file (one row a line), a JSON file (a list of rows, or one row a line) or a Parquet
    file, as rows; blank lines are not rows."""
    if not path.is_file():
        raise OwnDataError([f"data.train.path: no file {path}"])
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
        except Exception as exc:
            raise OwnDataError([f"{path}: not a Parquet file pyarrow can read ({exc})"]) from None
    if path.suffix not in (".jsonl", ".json"):
        raise OwnDataError([f"data.train.path: {path} is not a .jsonl, .json or .parquet file"])
    text = path.read_text()
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise OwnDataError([f"{path}: not valid JSON ({exc})"]) from None
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            problems.append(f"{path}: line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
    if problems:
        raise OwnDataError(problems)
    return rows


def read_hub(cfg: StudyConfig, dataset: str) -> list[dict]:
    import datasets

    train = cfg.data.train
    try:
        return datasets.load_dataset(dataset, split=train.split, revision=train.revision).to_list()
    except Exception as exc:  # offline, unknown id or split, no access: all answered the same way
        offline = [
            v for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if os.environ.get(v, "").lower() in ("1", "true")
        ]
        why = f" ({' and '.join(offline)} set: only a dataset already in the cache can load)" if offline else ""
        raise OwnDataError(
            [f"data.train.path: hub dataset {dataset!r} (split {train.split!r}) cannot be loaded{why}: {exc}"]
        ) from None


def read_rows(cfg: StudyConfig) -> list[dict]:
    """data.train's rows, as they are in the file or the hub split; an empty one is an error."""
    where = source(cfg)
    rows = read_file(where) if isinstance(where, Path) else read_hub(cfg, where)
    if not rows:
        raise OwnDataError([f"data.train.path: {where} has no rows"])
    return rows


def problems_of(cleaned_problems: list[str], cfg: StudyConfig, shown: int = 20) -> list[str]:
    """A cleaner's problems (row and field) prefixed with where the rows came from; a long list
    is cut after `shown`, with how many more there are."""
    where = source(cfg)
    lines = [f"{where}: {p}" for p in cleaned_problems[:shown]]
    if len(cleaned_problems) > shown:
        lines.append(f"{where}: and {len(cleaned_problems) - shown} more rows with problems")
    return lines


def identity(cfg: StudyConfig) -> dict:
    """What data.train resolved to: the file's SHA-256, or the hub dataset's commit."""
    where = source(cfg)
    if isinstance(where, Path):
        return {"resolved": sha256_file(where), "kind": f"sha256 of {where.name}"}
    import datasets

    requested = cfg.data.train.revision
    try:
        builder = datasets.load_dataset_builder(where, revision=requested)
        return {"requested": requested or "main", "resolved": builder.hash, "kind": "hub commit"}
    except Exception as exc:  # recorded, not fatal: the data itself has loaded
        return {"requested": requested or "main", "resolved": None, "kind": f"unresolved ({str(exc)[:200]})"}


def file_hash(cfg: StudyConfig) -> str | None:
    """A hash of data.train's file for a step's identity (a hub dataset is named by id and revision)."""
    if cfg.data.train is None:
        return None
    where = source(cfg)
    return sha256_file(where)[:16] if isinstance(where, Path) and where.is_file() else None
