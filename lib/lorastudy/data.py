"""Loading, cleaning and splitting the study's data.

Every source (the hub, local JSONL/Parquet files, the synthetic generator) goes through the
same loader, `datasets.load_dataset`, and the same cleaning: rows with missing fields or
empty references are skipped and counted; OpenMath evaluation keeps only numeric answers;
training and evaluation items never overlap (checked on normalised text, and reported).
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import synthetic
from .config import StudyConfig
from .io import atomic_write_json, read_jsonl, write_jsonl
from .metrics import parse_expected_answer
from .tasks import TASKS

# The file a local source holds for each dataset (JSONL or Parquet, same schema as the hub).
LOCAL_NAMES = {"openmath": "openmath", "arc_challenge": "arc_challenge", "squad": "squad"}
# Split sizes of the hub datasets, so a study asking for more items fails at `check` time.
HUB_EVAL_SIZES = {"arc_challenge": 1172, "squad": 10570}
# OpenMath has one big training split; training and held-out problems both come from it.
OPENMATH_STREAM_MARGIN = 2.0


class DataError(ValueError):
    pass


@dataclass
class Cleaned:
    rows: list[dict]
    loaded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def normalise_text(text: str) -> str:
    """Lower case, no punctuation, single spaces: the key for overlap checks."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


# ------------------------------------------------------------------------- loading


def local_file(directory: Path, dataset: str) -> Path | None:
    for suffix in (".jsonl", ".json", ".parquet"):
        path = directory / f"{LOCAL_NAMES[dataset]}{suffix}"
        if path.is_file():
            return path
    return None


def load_local(path: Path, limit: int | None = None) -> list[dict]:
    import datasets

    builder = "parquet" if path.suffix == ".parquet" else "json"
    ds = datasets.load_dataset(builder, data_files={"data": str(path)}, split="data")
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.to_list()


def load_hub(dataset: str, limit: int | None) -> list[dict]:
    import datasets

    task = TASKS[dataset]
    if dataset == "openmath":
        # 1M+ rows: stream just the head instead of downloading the whole split.
        stream = datasets.load_dataset(task.hub_id, split=task.hub_split, streaming=True)
        return list(stream.take(limit)) if limit else list(stream)
    ds = datasets.load_dataset(task.hub_id, task.hub_config, split=task.hub_split)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.to_list()


def synthetic_sizes(cfg: StudyConfig) -> dict[str, int]:
    def n(task: str, default: int) -> int:
        try:
            return cfg.task(task).n or default
        except KeyError:
            return 0

    return {
        "openmath": cfg.data.train_samples + n("openmath", 200),
        "arc_challenge": n("arc_challenge", 200),
        "squad": n("squad", 200),
    }


def write_synthetic(directory: Path, cfg: StudyConfig) -> None:
    """Write the synthetic source files; seeds differ per dataset and from pretraining's."""
    sizes, seed = synthetic_sizes(cfg), cfg.data.seed
    makers: dict[str, Callable[[int, int], list[dict]]] = {
        "openmath": synthetic.openmath_rows,
        "arc_challenge": synthetic.arc_rows,
        "squad": synthetic.squad_rows,
    }
    for offset, (name, make) in enumerate(makers.items()):
        if sizes[name]:
            write_jsonl(directory / f"{name}.jsonl", make(sizes[name], seed * 1000 + offset + 1))


def load_raw(cfg: StudyConfig, dataset: str, source_dir: Path | None, limit: int | None) -> list[dict]:
    if cfg.data.source == "hub":
        return load_hub(dataset, limit)
    assert source_dir is not None
    path = local_file(source_dir, dataset)
    if path is None:
        raise DataError(f"{source_dir}: no {LOCAL_NAMES[dataset]}.jsonl, .json or .parquet")
    return load_local(path, limit)


# ------------------------------------------------------------------------- cleaning


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def clean_openmath(rows: Iterable[dict], *, require_numeric: bool) -> Cleaned:
    out = Cleaned(rows=[])
    for index, row in enumerate(rows):
        out.loaded += 1
        problem, solution = _text(row.get("problem")), _text(row.get("generated_solution"))
        expected = _text(str(row["expected_answer"])) if row.get("expected_answer") is not None else None
        if not problem or not solution or not expected:
            out.skip("missing problem, solution or expected answer")
            continue
        if require_numeric and parse_expected_answer(expected) is None:
            out.skip("expected answer is not a number")
            continue
        out.rows.append(
            {
                "id": str(row.get("id") or f"openmath-{index:07d}"),
                "problem": problem,
                "generated_solution": solution,
                "expected_answer": expected,
                "problem_source": row.get("problem_source") or "",
            }
        )
    return out


def clean_arc(rows: Iterable[dict]) -> Cleaned:
    out = Cleaned(rows=[])
    for row in rows:
        out.loaded += 1
        choices = row.get("choices") or {}
        texts, labels = choices.get("text") or [], choices.get("label") or []
        if not _text(row.get("question")) or not row.get("id"):
            out.skip("missing id or question")
        elif len(texts) < 2 or len(texts) != len(labels) or not all(_text(t) for t in texts):
            out.skip("missing or malformed choices")
        elif row.get("answerKey") not in labels:
            out.skip("answer key is not one of the choice labels")
        else:
            out.rows.append(
                {
                    "id": str(row["id"]),
                    "question": row["question"].strip(),
                    "choices": {"text": [t.strip() for t in texts], "label": list(labels)},
                    "answerKey": row["answerKey"],
                }
            )
    return out


def clean_squad(rows: Iterable[dict]) -> Cleaned:
    out = Cleaned(rows=[])
    for row in rows:
        out.loaded += 1
        answers = row.get("answers") or {}
        texts = [t for t in (answers.get("text") or []) if _text(t)]
        if not row.get("id") or not _text(row.get("context")) or not _text(row.get("question")):
            out.skip("missing id, context or question")
        elif not texts:
            out.skip("no reference answer")
        else:
            out.rows.append(
                {
                    "id": str(row["id"]),
                    "title": row.get("title") or "",
                    "context": row["context"],
                    "question": row["question"].strip(),
                    "answers": {"text": texts, "answer_start": list(answers.get("answer_start") or [])[: len(texts)]},
                }
            )
    return out


def item_text(dataset: str, row: dict) -> str:
    """The text that identifies an item, for overlap checks."""
    if dataset == "openmath":
        return row["problem"]
    if dataset == "arc_challenge":
        return row["question"] + " " + " ".join(row["choices"]["text"])
    return row["context"] + " " + row["question"]


# ------------------------------------------------------------------------- the data step


def prepare(cfg: StudyConfig, data_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Load, clean and split every dataset; write train.jsonl, eval/<task>.jsonl, summary.json.

    Files are written under temporary names and renamed, summary.json last, so a data folder
    with a summary in it is complete.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    source_dir = None
    if cfg.data.source == "synthetic":
        source_dir = data_dir / "source"
        write_synthetic(source_dir, cfg)
    elif cfg.data.source == "local":
        source_dir = cfg.resolve(cfg.data.local_dir)

    summary: dict[str, Any] = {"source": cfg.data.source, "datasets": {}}
    eval_tasks = {t.name: t for t in cfg.tasks}

    # OpenMath: one pool, deduplicated on normalised problem text, then split so the
    # held-out problems can never appear in training.
    n_math_eval = (eval_tasks["openmath"].n or 500) if "openmath" in eval_tasks else 0
    want = cfg.data.train_samples + n_math_eval
    limit = int(want * OPENMATH_STREAM_MARGIN) if cfg.data.source == "hub" else None
    math = clean_openmath(load_raw(cfg, "openmath", source_dir, limit), require_numeric=False)
    unique, seen = [], set()
    for row in math.rows:
        key = normalise_text(row["problem"])
        if key in seen:
            math.skip("duplicate problem")
        else:
            seen.add(key)
            unique.append(row)
    numeric = [r for r in unique if parse_expected_answer(r["expected_answer"]) is not None]
    held_out = numeric[-n_math_eval:] if n_math_eval else []
    held_ids = {r["id"] for r in held_out}
    train = [r for r in unique if r["id"] not in held_ids][: cfg.data.train_samples]
    if len(train) < cfg.data.train_samples:
        raise DataError(
            f"data.train_samples: asked for {cfg.data.train_samples} training problems, "
            f"the OpenMath source has {len(train)} after cleaning"
        )
    if len(held_out) < n_math_eval:
        raise DataError(
            f"tasks.openmath.n: asked for {n_math_eval} held-out problems with numeric "
            f"answers, the source has {len(held_out)} beside the training set"
        )
    summary["datasets"]["openmath"] = {
        "loaded": math.loaded,
        "skipped": math.skipped,
        "train": len(train),
        "eval": len(held_out),
    }
    write_jsonl(data_dir / "train.jsonl", train)
    train_keys = {normalise_text(r["problem"]) for r in train}

    cleaners = {"arc_challenge": clean_arc, "squad": clean_squad}
    for name, task_cfg in eval_tasks.items():
        if name == "openmath":
            rows = held_out
        else:
            limit = task_cfg.n if cfg.data.source == "hub" else None
            cleaned = cleaners[name](load_raw(cfg, name, source_dir, limit))
            if task_cfg.n is not None and len(cleaned.rows) < task_cfg.n:
                raise DataError(
                    f"tasks.{name}.n: asked for {task_cfg.n} items, the data has "
                    f"{len(cleaned.rows)} after skipping {sum(cleaned.skipped.values())}"
                )
            rows = cleaned.rows[: task_cfg.n]
            summary["datasets"][name] = {"loaded": cleaned.loaded, "skipped": cleaned.skipped, "eval": len(rows)}
        _check_enough(name, rows)
        overlap = sum(
            normalise_text(item_text(name, r)) in train_keys
            or normalise_text(r.get("problem") or r.get("question", "")) in train_keys
            for r in rows
        )
        summary["datasets"].setdefault(name, {})["overlap_with_train"] = overlap
        if overlap:
            log(f"warning: {overlap} {name} items also appear in the training data")
        write_jsonl(data_dir / "eval" / f"{name}.jsonl", rows)
    atomic_write_json(data_dir / "summary.json", summary)
    return summary


def _check_enough(task: str, rows: list[dict]) -> None:
    if not rows:
        raise DataError(f"tasks.{task}: no usable items left after cleaning")
    if len(rows) < 2:
        raise DataError(f"tasks.{task}: only 1 usable item left after cleaning; paired tests need at least 2")


def load_train(data_dir: Path) -> list[dict]:
    return read_jsonl(data_dir / "train.jsonl")


def load_eval(data_dir: Path, task: str) -> list[dict]:
    return read_jsonl(data_dir / "eval" / f"{task}.jsonl")


def count_rows(path: Path) -> int:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix == ".json":
        text = path.read_text()
        return (
            len(json.loads(text))
            if text.lstrip().startswith("[")
            else sum(1 for line in text.splitlines() if line.strip())
        )
    with path.open() as handle:
        return sum(1 for line in handle if line.strip())
