#!/usr/bin/env python
"""OpenMath generation: lorastudy against lm-evaluation-harness's generate_until, on the same prompts and model.

Both generate greedily for the study's OpenMath prompts (the task's chat prompt, built by
lorastudy.tasks for the synthetic problems of lorastudy.tasks.synthetic.openmath_rows), with
the study's token limit (tasks.openmath.max_new_tokens), the task's stop strings and the
study's generation batch size (eval.generation_batch_size), on one model object: the 16-bit
base loaded by lorastudy.evaluate.step.load_for_eval, which the harness gets as a
PreTrainedModel (`lm_eval.models.huggingface.HFLM(pretrained=model, tokenizer=...)`, its HF
backend, with add_bos_token=False, since lorastudy tokenizes its prompts without special
tokens). The harness is sent the prompts as generate_until requests (context, {"until":
stop strings, "max_gen_toks": limit, "do_sample": False}), as a task's would be, and adds its
tokenizer's end token to the stop strings as it always does. Timed for each: the generation
alone, tokenizing and decoding included (the harness's HFLM.generate_until; lorastudy's
lorastudy.evaluate.generation.generate), after one untimed warm-up prompt each; not the
start-up or model loading. Wall time is the target's measure; the process's CPU time, which
other work on a shared machine changes less, is reported beside it. Also reported: how many
outputs are the same text (lorastudy strips the whitespace around an output; the harness
leaves that to a task's filters, so the harness's output is compared stripped). Target on
the real offline model: lorastudy's time at most 0.5 times the harness's, with every output
identical (the script exits 1 if not).
Needs `pip install -e .[bench]` (lm-eval[hf]).

    python benchmarks/peer_generation.py params/smollm2-135m.yaml --json runs/benchmarks/peer-gen-smollm2.json
"""

from __future__ import annotations

import os
import sys
import time

from common import ROOT, emit, load_average, load_study, log, needs_bench_extra, study_parser, versions

from lorastudy import resources, tasks  # noqa: E402
from lorastudy.evaluate.generation import generate  # noqa: E402
from lorastudy.evaluate.step import load_for_eval  # noqa: E402
from lorastudy.models.loading import load_tokenizer  # noqa: E402
from lorastudy.models.source import model_path  # noqa: E402
from lorastudy.tasks import synthetic  # noqa: E402

TARGET_RATIO = 0.5


def timed(fn, *args, **kwargs):
    """fn's result, and the wall and CPU seconds (this process's, which other work on a shared
    machine changes less) it took."""
    resources.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    resources.synchronize()
    return out, (time.perf_counter() - start, time.process_time() - cpu)


def harness_outputs(model, tokenizer, prompts: list[str], max_new: int, stops, batch_size: int) -> tuple[list, tuple]:
    """The harness's generate_until on the prompts, and the wall and CPU seconds it took."""
    os.environ.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, add_bos_token=False)
    gen_kwargs = {"until": list(stops), "max_gen_toks": max_new, "do_sample": False}

    def requests(texts):
        return [
            Instance(request_type="generate_until", doc={}, arguments=(text, dict(gen_kwargs)), idx=0) for text in texts
        ]

    lm.generate_until(requests(prompts[:1]), disable_tqdm=True)  # warm-up
    return timed(lm.generate_until, requests(prompts), disable_tqdm=True)


def lorastudy_outputs(model, tokenizer, prompts: list[str], max_new: int, stops, batch_size: int) -> tuple[list, tuple]:
    generate(model, tokenizer, prompts[:1], max_new, stops, 1)  # warm-up
    return timed(generate, model, tokenizer, prompts, max_new, stops, batch_size)


def openmath_prompts(cfg, tokenizer, n: int) -> tuple[list[str], int]:
    """The study's OpenMath prompts for n synthetic problems, and the study's token limit."""
    task = tasks.get("openmath")
    prompts = [task.prompt(tokenizer, row) for row in synthetic.openmath_rows(n, 4321)]
    max_new = next((t.max_new_tokens for t in cfg.tasks if t.name == task.name and t.max_new_tokens), None)
    return prompts, max_new or task.max_new_tokens


def figures(ours: list[dict], ours_s: tuple, theirs: list[str], theirs_s: tuple) -> dict:
    same = [a["output"] == b.strip() for a, b in zip(ours, theirs)]
    return {
        "generated_tokens": sum(o["generated_tokens"] for o in ours),
        "hit_token_limit": sum(o["hit_token_limit"] for o in ours),
        "lorastudy_generation_s": ours_s[0],
        "harness_generation_s": theirs_s[0],
        "time_ratio": ours_s[0] / theirs_s[0],
        "lorastudy_generation_cpu_s": ours_s[1],
        "harness_generation_cpu_s": theirs_s[1],
        "cpu_time_ratio": ours_s[1] / theirs_s[1],
        "target_ratio": TARGET_RATIO,
        "meets_target": ours_s[0] / theirs_s[0] <= TARGET_RATIO,
        "identical_outputs": sum(same),
        "all_identical": all(same) and len(ours) == len(theirs),
        "differing": [
            {"item": i, "lorastudy": a["output"], "harness": b}
            for i, (a, b, s) in enumerate(zip(ours, theirs, same))
            if not s
        ][:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50, help="OpenMath prompts (default 50)")
    args = parser.parse_args(argv)
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    if args.items < 1:
        problems.append("--items: must be positive")
    needs_bench_extra("lm_eval", "lm-evaluation-harness", problems)
    if problems:
        parser.error("; ".join(problems))
    stops = tasks.get("openmath").stop_strings
    path = model_path(cfg.model, ROOT / "runs" / "_models", cfg.resolve, log)
    tokenizer = load_tokenizer(path, cfg.model)
    model = load_for_eval(path, cfg.model, None, None)
    prompts, max_new = openmath_prompts(cfg, tokenizer, args.items)
    batch = cfg.eval.generation_batch_size
    load_before = load_average()
    log(f"lorastudy: generating {args.items} OpenMath prompts (up to {max_new} tokens) at batch {batch} ...")
    ours, ours_s = lorastudy_outputs(model, tokenizer, prompts, max_new, stops, batch)
    log(f"lm-evaluation-harness: the same prompts at batch {batch} ...")
    theirs, theirs_s = harness_outputs(model, load_tokenizer(path, cfg.model), prompts, max_new, stops, batch)
    result = figures(ours, ours_s, theirs, theirs_s)
    emit(
        {
            "benchmark": "peer_generation",
            "model": cfg.model.name,
            "dtype": cfg.model.dtype,
            "device": resources.device_name(),
            "items": args.items,
            "batch_size": batch,
            "max_new_tokens": max_new,
            "stop_strings": list(stops),
            **result,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "versions": versions("torch", "transformers", "lm_eval"),
        },
        args.json,
    )
    return 0 if result["all_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
