#!/usr/bin/env python
"""Generation throughput at given batch sizes, for each base a study's methods load.

The real study's time is dominated by generating OpenMath solutions. This measures greedy
generation of exactly --new-tokens tokens after --prompt-tokens random prompt tokens, for
each distinct base of the study's methods (the 16-bit base; the NF4 4-bit base QLoRA loads),
at each batch size in --batch-sizes, after one untimed warm-up batch: generated tokens per
second and the peak memory. A hub model the benchmark knows is replaced by random weights in
its architecture (as benchmarks/memory.py does), so no network is needed.

    python benchmarks/generation.py params/qwen3-0.6b.yaml --batch-sizes 32,128 --json runs/benchmarks/gen.json
"""

from __future__ import annotations

import sys
import time

import torch  # noqa: E402
from common import emit, load_average, load_study, log, study_parser, versions
from memory import benchmark_model

from lorastudy import methods, resources  # noqa: E402
from lorastudy.models.loading import load_model  # noqa: E402


@torch.no_grad()
def throughput(model, vocab: int, batch: int, prompt_tokens: int, new_tokens: int) -> dict:
    prompts = torch.randint(0, vocab, (batch, prompt_tokens), device=model.device)
    settings = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True)
    model.generate(prompts, **settings, pad_token_id=0)  # warm-up: kernels, allocator
    with resources.measure() as phase:
        start = time.perf_counter()
        out = model.generate(prompts, **settings, pad_token_id=0)
        resources.synchronize()
        seconds = time.perf_counter() - start
    generated = (out.shape[1] - prompt_tokens) * batch
    return {
        "batch_size": batch,
        "seconds": seconds,
        "generated_tokens": generated,
        "tokens_per_s": generated / seconds,
        "ms_per_step": 1000 * seconds / new_tokens,
        "peak_memory_mb": resources.headline_peak_mb(phase.peak),
        "memory_kind": phase.peak["memory_kind"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="32,128", help="comma-separated (default 32,128)")
    parser.add_argument("--prompt-tokens", type=int, default=128, help="prompt length (default 128)")
    parser.add_argument("--new-tokens", type=int, default=128, help="tokens generated per prompt (default 128)")
    args = parser.parse_args(argv)
    problems: list[str] = []
    cfg = load_study(parser, args, problems)
    try:
        batches = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1:
        problems.append("--batch-sizes: positive integers separated by commas, e.g. 32,128")
    if min(args.prompt_tokens, args.new_tokens) < 1:
        problems.append("--prompt-tokens and --new-tokens: must be positive")
    if problems:
        parser.error("; ".join(problems))
    folder = benchmark_model(cfg, build=True)
    bases = {}
    for name in cfg.methods:  # one entry per distinct base: 16-bit, and each quantization
        quant = methods.get(name, cfg).quant(cfg)
        bases.setdefault("16-bit" if quant is None else f"{quant.quant_type} 4-bit", quant)
    results = {}
    for base, quant in bases.items():
        model = load_model(str(folder), cfg.model, quant)
        vocab = model.config.vocab_size
        results[base] = []
        for batch in batches:
            log(f"{base} base: batch {batch}, {args.prompt_tokens} prompt + {args.new_tokens} new tokens ...")
            results[base].append(throughput(model, vocab, batch, args.prompt_tokens, args.new_tokens))
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    emit(
        {
            "benchmark": "generation",
            "model": cfg.model.name,
            "dtype": cfg.model.dtype,
            "device": resources.device_name(),
            "prompt_tokens": args.prompt_tokens,
            "new_tokens": args.new_tokens,
            "bases": results,
            "load_average": load_average(),
            "versions": versions(),
        },
        args.json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
