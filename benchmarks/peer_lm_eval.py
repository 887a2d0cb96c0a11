#!/usr/bin/env python
"""ARC scoring: lorastudy against lm-evaluation-harness, on the same items and model.

Both score the same ARC-style items (lorastudy.synthetic.arc_science_rows: every question
distinct, choices of several words, so neither side is flattered by the harness's sharing of
identical contexts or one-token continuations) with the same model weights, dtype and batch
size. The harness runs offline on a local task file (`dataset_path: json`, the arc_challenge
prompt: "Question: {{question}}\\nAnswer:", each choice as a continuation), as
`lm_eval --model hf --include_path` would. Timed for each: the scoring alone, from the
requests to the log-likelihoods, tokenizing included (for the harness, its
`HFLM.loglikelihood`; for lorastudy, `lorastudy.evaluate.score_choices`), not the start-up
or model loading. Also reported: whether acc and acc_norm agree item by item.
Target on the real offline model: lorastudy's scoring time at most 0.5 times the harness's,
with identical scores. Needs `pip install -e .[bench]` (lm-eval[hf]).

    python benchmarks/peer_lm_eval.py params/smollm2-135m.yaml --json runs/benchmarks/peer-smollm2.json
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, emit, load_average, load_study, log, needs_bench_extra, study_parser, versions

from lorastudy import resources, tasks  # noqa: E402
from lorastudy.evaluate.loglikelihood import score_choices  # noqa: E402
from lorastudy.evaluate.step import load_for_eval  # noqa: E402
from lorastudy.models.loading import load_tokenizer  # noqa: E402
from lorastudy.models.source import model_path  # noqa: E402
from lorastudy.tasks import synthetic  # noqa: E402
from lorastudy.util.files import write_jsonl  # noqa: E402

TARGET_RATIO = 0.5
TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: "{{{{choices.label.index(answerKey)}}}}"
doc_to_choice: "{{{{choices.text}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def harness_scores(path: str, dtype: str, rows: list[dict], batch_size: int, folder: Path) -> tuple[list, float]:
    """Per-item (acc, acc_norm) from lm-evaluation-harness, and the seconds its loglikelihood took."""
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    data = folder / "items.jsonl"
    write_jsonl(data, rows)
    (folder / "arc_local.yaml").write_text(TASK_YAML.format(name="arc_local", data=data))
    lm = HFLM(pretrained=path, dtype=dtype, device=resources.device(), batch_size=batch_size)
    spent = {"s": 0.0}
    loglikelihood = lm.loglikelihood

    def timed_loglikelihood(requests, *args, **kwargs):
        resources.synchronize()
        start = time.perf_counter()
        out = loglikelihood(requests, *args, **kwargs)
        resources.synchronize()
        spent["s"] += time.perf_counter() - start
        return out

    lm.loglikelihood = timed_loglikelihood
    result = simple_evaluate(
        model=lm, tasks=["arc_local"], task_manager=TaskManager(include_path=str(folder)), log_samples=True
    )
    samples = sorted(result["samples"]["arc_local"], key=lambda s: s["doc_id"])
    return [(float(s["acc"]), float(s["acc_norm"])) for s in samples], spent["s"]


def lorastudy_scores(path: str, cfg, rows: list[dict], batch_size: int) -> tuple[list, float]:
    tokenizer = load_tokenizer(path, cfg.model)
    model = load_for_eval(path, cfg.model, None, None)
    task = tasks.get("arc_challenge")
    score_choices(model, tokenizer, task, rows[:2], batch_size, lambda k: None)  # warm-up
    resources.synchronize()
    start = time.perf_counter()
    items = score_choices(model, tokenizer, task, rows, batch_size, lambda k: None)
    resources.synchronize()
    return [(it["scores"]["acc"], it["scores"]["acc_norm"]) for it in items], time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100, help="ARC-style questions (default 100)")
    args = parser.parse_args(argv)
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    if args.items < 1:
        problems.append("--items: must be positive")
    needs_bench_extra("lm_eval", "lm-evaluation-harness", problems)
    if problems:
        parser.error("; ".join(problems))
    path = model_path(cfg.model, ROOT / "runs" / "_models", cfg.resolve, log)
    rows = synthetic.arc_science_rows(args.items, 1234)
    batch = cfg.eval.batch_size
    load_before = load_average()
    log(f"lorastudy: scoring {args.items} items ({4 * args.items} choices) at batch {batch} ...")
    ours, ours_s = lorastudy_scores(path, cfg, rows, batch)
    log(f"lm-evaluation-harness: the same items at batch {batch} ...")
    with tempfile.TemporaryDirectory(prefix="lorastudy-peer-") as folder:
        theirs, theirs_s = harness_scores(path, cfg.model.dtype, rows, batch, Path(folder))
    agree = [a == b for a, b in zip(ours, theirs)]
    ratio = ours_s / theirs_s
    emit(
        {
            "benchmark": "peer_lm_eval",
            "model": cfg.model.name,
            "dtype": cfg.model.dtype,
            "device": resources.device_name(),
            "items": args.items,
            "batch_size": batch,
            "lorastudy_scoring_s": ours_s,
            "harness_scoring_s": theirs_s,
            "time_ratio": ratio,
            "target_ratio": TARGET_RATIO,
            "meets_target": ratio <= TARGET_RATIO,
            "items_agreeing": sum(agree),
            "all_agree": all(agree) and len(ours) == len(theirs),
            "acc": {
                "lorastudy": sum(a for a, _ in ours) / len(ours),
                "harness": sum(a for a, _ in theirs) / len(theirs),
            },
            "acc_norm": {
                "lorastudy": sum(n for _, n in ours) / len(ours),
                "harness": sum(n for _, n in theirs) / len(theirs),
            },
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "versions": versions("torch", "transformers", "lm_eval"),
        },
        args.json,
    )
    return 0 if all(agree) else 1


if __name__ == "__main__":
    sys.exit(main())
