"""Latency at batch size 1 on the built tiny model: TTFT and TPOT at a fixed generation length
add up to the generation's time, and the fixed length holds whatever the model would answer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from lorastudy import tasks
from lorastudy.evaluate.generation import generate
from lorastudy.evaluate.latency import fixed_length_latency, measure_latency, time_fixed_length
from lorastudy.evaluate.step import load_for_eval
from lorastudy.models.loading import load_tokenizer
from lorastudy.study.load import load_config
from lorastudy.tasks import synthetic

ROOT = Path(__file__).resolve().parents[2]
TOKENS = 24


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model):
    cfg = load_config(ROOT / "params" / "smoke.yaml")
    return load_for_eval(str(tiny_model), cfg.model, None, None), load_tokenizer(str(tiny_model), cfg.model)


@pytest.fixture(scope="module")
def prompts(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    task = tasks.get("openmath")
    return [task.prompt(tokenizer, {"id": f"m{i}", **r}) for i, r in enumerate(synthetic.openmath_rows(6, 5))]


def test_ttft_and_tpot_are_positive_ordered_and_add_up_to_the_generation(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    fixed = fixed_length_latency(model, tokenizer, prompts, TOKENS)
    assert fixed["tokens"] == TOKENS and fixed["generated"] == [TOKENS] * len(prompts)
    assert all(v > 0 for v in fixed["ttft_ms"] + fixed["tpot_ms"])
    assert fixed["ttft_p95_ms"] >= fixed["ttft_p50_ms"] > 0 and fixed["tpot_p95_ms"] >= fixed["tpot_p50_ms"] > 0
    # Within one generation: the first token's time and K - 1 decoding steps are the whole of
    # it but the work after the last token (returning the sequences).
    for ttft, tpot, total in zip(fixed["ttft_ms"], fixed["tpot_ms"], fixed["total_ms"]):
        covered = ttft + tpot * (TOKENS - 1)
        assert covered <= total and total - covered <= 0.1 * total + 5.0, (ttft, tpot, total)


def test_ttft_is_the_prefill_and_first_token_and_tpot_each_later_step(model_and_tokenizer, prompts):
    """A model whose prefill takes 400 ms and each later decoding step 100 ms (sleeps far above the
    tiny model's own compute, even on a loaded machine): TTFT and TPOT must find them, and TPOT
    must hold none of the prefill (spread over 5 steps it would add 80 ms to each)."""
    model, tokenizer = model_and_tokenizer

    def slow(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        time.sleep(0.400 if ids.shape[1] > 1 else 0.100)

    hook, threads = model.register_forward_pre_hook(slow, with_kwargs=True), torch.get_num_threads()
    torch.set_num_threads(1)  # threads that spin while other jobs hold the cores only add noise here
    try:
        fixed = fixed_length_latency(model, tokenizer, prompts[:4], 6)
        covered, plain = _interleaved(model, tokenizer, prompts[:4], 6)
    finally:
        hook.remove()
        torch.set_num_threads(threads)
    assert 400.0 <= fixed["ttft_p50_ms"] < 400.0 + 60.0, fixed
    assert 100.0 <= fixed["tpot_p50_ms"] < 100.0 + 40.0, fixed
    assert fixed["ttft_p95_ms"] >= fixed["ttft_p50_ms"] and fixed["tpot_p95_ms"] >= fixed["tpot_p50_ms"]
    # Each generation's whole time is its TTFT and 5 steps of TPOT, to within the work after the
    # last token (well under a millisecond; 20 ms leaves room for another process taking the CPU).
    for ttft, tpot, total in zip(fixed["ttft_ms"], fixed["tpot_ms"], fixed["total_ms"]):
        assert 0.0 <= total - (ttft + 5 * tpot) < 20.0, fixed
    # TTFT + TPOT x (K - 1) against the same generations timed whole with no streamer; the fastest
    # of each, as other work on a shared machine only ever slows one down.
    assert min(covered) == pytest.approx(min(plain), rel=0.15), (covered, plain)


def _interleaved(model, tokenizer, prompts: list[str], tokens: int) -> tuple[list[float], list[float]]:
    """Per prompt, TTFT + TPOT x (tokens - 1) of a timed generation, then a generation of the same
    length timed whole by a clock around `generate` alone."""
    covered, plain = [], []
    for p in prompts:
        timed = time_fixed_length(model, tokenizer, p, tokens)
        covered.append(timed["ttft_ms"] + timed["tpot_ms"] * (tokens - 1))
        batch = tokenizer([p], return_tensors="pt", add_special_tokens=False)
        start = time.perf_counter()
        with torch.no_grad():
            model.generate(**batch, min_new_tokens=tokens, max_new_tokens=tokens, do_sample=False)
        plain.append(1000.0 * (time.perf_counter() - start))
    return covered, plain


def test_the_fixed_length_holds_where_the_model_would_have_stopped_at_once(model_and_tokenizer, prompts):
    model, tokenizer = model_and_tokenizer
    first = generate(model, tokenizer, prompts[:1], 8, (), 1)[0]
    ids = tokenizer([prompts[0]], return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        greedy = int(model(input_ids=ids).logits[0, -1].argmax())
    config = model.generation_config
    saved = config.eos_token_id
    try:
        config.eos_token_id = [greedy]  # the model's first choice now ends its answer
        stopped = generate(model, tokenizer, prompts[:1], 8, (), 1)[0]
        assert stopped["generated_tokens"] == 1 and not stopped["hit_token_limit"]
        assert time_fixed_length(model, tokenizer, prompts[0], TOKENS)["generated"] == TOKENS
    finally:
        config.eos_token_id = saved
    assert first["generated_tokens"] > 1  # the model's own end token was not its first choice


def test_the_fixed_length_holds_for_an_adapter_too(model_and_tokenizer, prompts):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = model_and_tokenizer
    adapted = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    try:
        timed = time_fixed_length(adapted, tokenizer, prompts[1], 8)
        assert timed["generated"] == 8 and timed["ttft_ms"] > 0 and timed["tpot_ms"] > 0
    finally:
        adapted.unload()


def test_the_latency_record_holds_both_passes_on_the_same_items(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    rows = [{"id": f"m{i}", **r} for i, r in enumerate(synthetic.openmath_rows(3, 7))]
    lat = measure_latency(model, tokenizer, tasks.get("openmath"), rows, 12, 6)
    assert lat["items"] == 3 and len(lat["ms"]) == len(lat["item_tokens"]) == 3
    assert lat["p95_ms"] >= lat["p50_ms"] > 0
    fixed = lat["fixed_length"]
    assert fixed["tokens"] == 6 and len(fixed["ttft_ms"]) == len(fixed["tpot_ms"]) == 3
    assert fixed["generated"] == [6, 6, 6]
