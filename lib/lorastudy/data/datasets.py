"""Loading, cleaning and splitting the study's data.

Every source (the hub, local JSONL/Parquet files, the synthetic generator) goes through the
same loader, `datasets.load_dataset`, and the same cleaning: rows with missing fields or
empty references are skipped and counted, each task by the cleaner its declaration names;
the training task's held-out items are only those it can evaluate (OpenMath: numeric answers);
training and evaluation items never overlap (checked on normalised text, and reported).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import tasks
from ..methods.declaration import Method
from ..study.schema import StudyConfig
from ..tasks import Cleaned, Task
from ..util.files import atomic_write_json, read_json, read_jsonl, sha256_file, write_jsonl
from . import own
from .lengths import CUT_WARNING_SHARE, training_lengths

# A streamed training split is read this many times the rows needed, to leave room for the
# rows cleaning and de-duplication drop, through a shuffle buffer of this many rows.
STREAM_MARGIN = 2.0


SHUFFLE_BUFFER = 10_000


# Synthetic rows per task when the study gives no n and the task no default.
SYNTHETIC_DEFAULT_N = 200


class DataError(ValueError):
    pass


def task_of(cfg: StudyConfig, name: str) -> Task:
    return tasks.get(name, cfg)


def normalise_text(text: str) -> str:
    """Lower case, no punctuation, single spaces: the key for overlap checks."""
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


def local_file(directory: Path, task: Task) -> Path | None:
    """The task's file in a local data folder: <name>.jsonl, .json or .parquet."""
    for suffix in (".jsonl", ".json", ".parquet"):
        path = directory / f"{task.local_name}{suffix}"
        if path.is_file():
            return path
    return None


def load_local(path: Path) -> list[dict]:
    import datasets

    builder = "parquet" if path.suffix == ".parquet" else "json"
    return datasets.load_dataset(builder, data_files={"data": str(path)}, split="data").to_list()


def load_hub(task: Task, limit: int | None, seed: int, revision: str | None = None) -> list[dict]:
    """A hub split: whole, or for a split too big to download (streaming), `limit` rows read
    through a seeded shuffle buffer rather than its head (hub splits are often ordered by
    source or by article)."""
    import datasets

    hub = task.hub
    if hub.streaming:
        stream = datasets.load_dataset(hub.id, hub.config, split=hub.split, streaming=True, revision=revision)
        stream = stream.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)
        return list(stream.take(limit)) if limit else list(stream)
    return datasets.load_dataset(hub.id, hub.config, split=hub.split, revision=revision).to_list()


def sample(rows: list[dict], n: int | None, seed: int, name: str) -> list[dict]:
    """A seeded random sample of n rows (all of them when n is None), in the source's order.
    Never the head of a split: SQuAD's validation split, for one, is ordered by article, so
    its first 500 questions come from two or three passages and are not independent items."""
    if n is None or n >= len(rows):
        return list(rows)
    picked = random.Random(f"{seed}:{name}").sample(range(len(rows)), n)
    return [rows[i] for i in sorted(picked)]


def eval_size(cfg: StudyConfig, name: str) -> int | None:
    """Items the study evaluates on a task: its n, else the task's default (None: whole split)."""
    task_cfg = next((t for t in cfg.tasks if t.name == name), None)
    if task_cfg is None:
        return 0
    return task_cfg.n if task_cfg.n is not None else task_of(cfg, name).default_n


def synthetic_sizes(cfg: StudyConfig) -> dict[str, int]:
    """Rows to generate per task: the training task's pool holds the training and the held-out items.
    A task with data of its own (data.train, an lm-eval file) gets none."""
    sizes = {}
    for name in dict.fromkeys([cfg.data.train_task, *(t.name for t in cfg.tasks)]):
        if not task_of(cfg, name).study_data or (name == cfg.data.train_task and cfg.data.train is not None):
            continue
        n = eval_size(cfg, name)
        n = SYNTHETIC_DEFAULT_N if n is None else n
        training = cfg.data.train_samples + cfg.data.validation_samples
        sizes[name] = n + (training if name == cfg.data.train_task else 0)
    return sizes


def write_synthetic(directory: Path, cfg: StudyConfig) -> None:
    """Write the synthetic source files; each task's seed differs, and from pretraining's."""
    for name, n in synthetic_sizes(cfg).items():
        task = task_of(cfg, name)
        seed = cfg.data.seed * 1000 + _synthetic_offset(name)
        write_jsonl(directory / f"{task.local_name}.jsonl", task.synthetic(n, seed))


def _synthetic_offset(name: str) -> int:
    # The built-in tasks keep the seeds they always had, so synthetic data stays the same.
    builtin = {"openmath": 1, "arc_challenge": 2, "squad": 3}
    return builtin.get(name, 4 + int(hashlib.sha256(name.encode()).hexdigest()[:6], 16) % 1000)


def load_raw(cfg: StudyConfig, task: Task, source_dir: Path | None, limit: int | None = None) -> list[dict]:
    if cfg.data.source == "hub":
        return load_hub(task, limit, cfg.data.seed, cfg.data.revisions.get(task.name))
    assert source_dir is not None
    path = local_file(source_dir, task)
    if path is None:
        raise DataError(f"{source_dir}: no {task.local_name}.jsonl, .json or .parquet")
    return load_local(path)


def prepare(
    cfg: StudyConfig, data_dir: Path, log: Callable[[str], None] = print, model: dict | None = None, tokenizer=None
) -> dict:
    """Load, clean and split every dataset; write train.jsonl, eval/<task>.jsonl, summary.json.
    `model` is what the model resolved to (models.identity), recorded so later steps load it;
    with the model's `tokenizer`, the training examples' token lengths are recorded too.

    Files are written under temporary names and renamed, summary.json last, so a data folder
    with a summary in it is complete.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    source_dir = _source_dir(cfg, data_dir)
    summary: dict[str, Any] = {"source": cfg.data.source, "model": model, "datasets": {}}
    if cfg.data.train is not None:
        summary["train_data"] = {"path": cfg.data.train.path, "format": cfg.data.train.format}
    train, validation, held_out, summary["datasets"][cfg.data.train_task] = split_training_pool(cfg, source_dir)
    write_jsonl(data_dir / "train.jsonl", train)
    write_jsonl(data_dir / "validation.jsonl", validation)
    if tokenizer is not None:
        lengths = summary["train_lengths"] = training_lengths(cfg, train, tokenizer)
        if lengths["cut_share"] > CUT_WARNING_SHARE:
            log(
                f"warning: data.max_seq_len ({cfg.data.max_seq_len}) cuts {lengths['cut']} of {lengths['examples']} "
                f"training examples (the longest has {lengths['max']} tokens): raise it"
            )
    train_task = task_of(cfg, cfg.data.train_task)
    train_keys = {normalise_text(key) for row in train for key in train_task.overlap_keys(row)}
    for task_cfg in cfg.tasks:
        task = task_of(cfg, task_cfg.name)
        if task.name == train_task.name:
            rows = held_out
        elif task.harness is not None:
            rows, summary["datasets"][task.name] = harness_rows(cfg, task)
        else:
            rows, summary["datasets"][task.name] = eval_rows(cfg, task, source_dir)
        _check_enough(task.name, rows)
        overlap = sum(any(normalise_text(key) in train_keys for key in task.overlap_keys(r)) for r in rows)
        summary["datasets"].setdefault(task.name, {})["overlap_with_train"] = overlap
        if overlap:
            log(f"warning: {overlap} {task.name} items also appear in the training data")
        write_jsonl(data_dir / "eval" / f"{task.name}.jsonl", rows)
    for name, info in summary["datasets"].items():
        info["title"] = task_of(cfg, name).title
        info["from"] = source_of(cfg, task_of(cfg, name))
        info["revision"] = dataset_identity(cfg, task_of(cfg, name), source_dir)
    atomic_write_json(data_dir / "summary.json", summary)
    return summary


def source_of(cfg: StudyConfig, task: Task) -> str:
    """Where a task's rows come from: the study's data.train, an lm-eval task's own files, else
    the study's data.source (hub, local, synthetic)."""
    if task.name == cfg.data.train_task and cfg.data.train is not None:
        return "data.train"
    if task.harness is not None:
        return "lm-eval"
    return cfg.data.source


def dataset_identity(cfg: StudyConfig, task: Task, source_dir: Path | None) -> dict:
    """What a task's data resolved to: the hub dataset's commit, or the SHA-256 of the local file
    (data.train's, for the training task; an lm-eval task's data files, for such a task)."""
    if task.name == cfg.data.train_task and cfg.data.train is not None:
        return own.identity(cfg)
    if task.harness is not None:
        from .harness import harness_identity

        return harness_identity(task)
    if cfg.data.source != "hub":
        path = local_file(source_dir, task)
        return {"resolved": sha256_file(path), "kind": f"sha256 of {path.name}"}
    import datasets

    requested = cfg.data.revisions.get(task.name)
    try:
        builder = datasets.load_dataset_builder(task.hub.id, task.hub.config, revision=requested)
        return {"requested": requested or "main", "resolved": builder.hash, "kind": "hub commit"}
    except Exception as exc:  # recorded, not fatal: the data itself has loaded
        return {"requested": requested or "main", "resolved": None, "kind": f"unresolved ({str(exc)[:200]})"}


def pin_model(cfg: StudyConfig, data_dir: Path) -> StudyConfig:
    """The study with its hub model pinned to the commit the data step resolved, so training
    and every evaluation load the same weights even if the hub's branch moves meanwhile."""
    from ..models.source import pinned

    return dataclasses.replace(cfg, model=pinned(cfg.model, read_json(data_dir / "summary.json").get("model")))


def run_settings(cfg: StudyConfig, method: Method, data_dir: Path) -> StudyConfig:
    """The settings a run of `method` trains or evaluates with: the study's, with the method's
    overrides applied and the model pinned to the revision the data step resolved."""
    return pin_model(method.settings(cfg), data_dir)


def _source_dir(cfg: StudyConfig, data_dir: Path) -> Path | None:
    if cfg.data.source == "synthetic":
        write_synthetic(data_dir / "source", cfg)
        return data_dir / "source"
    if cfg.data.source == "local":
        return cfg.resolve(cfg.data.local_dir)
    return None


def split_training_pool(cfg: StudyConfig, source_dir: Path | None) -> tuple[list[dict], list[dict], list[dict], dict]:
    """One pool, de-duplicated on normalised text, split so that held-out items can never
    appear in training: the held-out items are a seeded random sample of the evaluable ones,
    training the first of the rest, and the validation slice the next of the rest (so it is
    neither trained on nor evaluated)."""
    task = task_of(cfg, cfg.data.train_task)
    n_eval, n_val = eval_size(cfg, task.name) or 0, cfg.data.validation_samples
    want = cfg.data.train_samples + n_val + n_eval
    if cfg.data.train is not None:
        pool = task.clean(own.read_rows(cfg))
        if pool.problems:
            raise own.OwnDataError(own.problems_of(pool.problems, cfg))
    else:
        limit = int(want * STREAM_MARGIN) if cfg.data.source == "hub" and task.hub.streaming else None
        pool = task.clean(load_raw(cfg, task, source_dir, limit))
    unique, seen = [], set()
    for row in pool.rows:
        key = normalise_text(task.overlap_keys(row)[0])
        if key in seen:
            pool.skip("duplicate item")
        else:
            seen.add(key)
            unique.append(row)
    evaluable = [r for r in unique if task.evaluable(r)]
    held_out = sample(evaluable, n_eval, cfg.data.seed, task.name) if n_eval else []
    held_ids = {r["id"] for r in held_out}
    rest = [r for r in unique if r["id"] not in held_ids]
    train, validation = rest[: cfg.data.train_samples], rest[cfg.data.train_samples :][:n_val]
    if len(train) < cfg.data.train_samples:
        where = f"{cfg.data.train.path} has" if cfg.data.train is not None else f"the {task.name} source has"
        raise DataError(
            f"data.train_samples: asked for {cfg.data.train_samples} training items, "
            f"{where} {len(train)} beside the {len(held_out)} held out, after cleaning"
        )
    if len(validation) < n_val:
        raise DataError(
            f"data.validation_samples: asked for {n_val} validation items, the {task.name} source has "
            f"{len(validation)} beside the training and held-out items"
        )
    if len(held_out) < n_eval:
        raise DataError(
            f"tasks.{task.name}.n: asked for {n_eval} held-out items that can be evaluated, "
            f"the source has {len(held_out)} beside the training set"
        )
    info = {
        "loaded": pool.loaded,
        "skipped": pool.skipped,
        "train": len(train),
        "validation": len(validation),
        "eval": len(held_out),
        "sampled_from": len(evaluable),
    }
    return train, validation, held_out, info


def own_data_problems(cfg: StudyConfig) -> list[str]:
    """What keeps data.train from giving the study its training and held-out rows, one line per
    problem (file, row and field), found as the data step would find them, before any model loads."""
    if cfg.data.train is None:
        return []
    try:
        split_training_pool(cfg, None)
    except own.OwnDataError as exc:
        return exc.problems
    except DataError as exc:
        return [str(exc)]
    return []


def eval_rows(cfg: StudyConfig, task: Task, source_dir: Path | None) -> tuple[list[dict], dict]:
    """A task's evaluation items, cleaned, and the counts for the data summary."""
    n = eval_size(cfg, task.name)
    cleaned: Cleaned = task.clean(load_raw(cfg, task, source_dir))
    usable = [r for r in cleaned.rows if task.evaluable(r)]
    for _ in range(len(cleaned.rows) - len(usable)):
        cleaned.skip("cannot be evaluated")
    if n is not None and len(usable) < n:
        raise DataError(
            f"tasks.{task.name}.n: asked for {n} items, the data has "
            f"{len(usable)} after skipping {sum(cleaned.skipped.values())}"
        )
    rows = sample(usable, n, cfg.data.seed, task.name)
    return rows, {"loaded": cleaned.loaded, "skipped": cleaned.skipped, "eval": len(rows), "sampled_from": len(usable)}


def harness_rows(cfg: StudyConfig, task: Task) -> tuple[list[dict], dict]:
    """An lm-eval task's evaluation items: a seeded random sample of the harness's own evaluation
    documents (data/harness.py), and the counts for the data summary."""
    from . import harness

    try:
        loaded = harness.load(task)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    total, n = len(loaded.eval_docs), eval_size(cfg, task.name)
    if n is not None and n > total:
        raise DataError(f"tasks.{task.name}.n: asked for {n} items, {task.harness.spec} has {total}")
    rows = harness.rows_for(loaded, sample(list(range(total)), n, cfg.data.seed, task.name))
    split = "test" if loaded.has_test_docs() else "validation"
    return rows, {"loaded": total, "skipped": {}, "eval": len(rows), "sampled_from": total, "split": split}


def _check_enough(task: str, rows: list[dict]) -> None:
    if not rows:
        raise DataError(f"tasks.{task}: no usable items left after cleaning")
    if len(rows) < 2:
        raise DataError(f"tasks.{task}: only 1 usable item left after cleaning; paired tests need at least 2")


def load_train(data_dir: Path) -> list[dict]:
    return read_jsonl(data_dir / "train.jsonl")


def load_validation(data_dir: Path) -> list[dict]:
    """The validation slice (none in a data folder written before there was one)."""
    path = data_dir / "validation.jsonl"
    return read_jsonl(path) if path.is_file() else []


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
