"""The rule-based words: each verdict follows from the numbers beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lorastudy.methods.builtin import LORA, QLORA
from lorastudy.report.verdicts import cost_sentences, recommendation, verdict

GRADING_WORDS = re.compile(r"\b(small|slight|negligible|minor|comparable|similar|relatively|marginal)\b", re.I)
WIN_WORDS = re.compile(r"\b(better|improv\w*|wins?|outperform\w*|gain\w*|superior)\b", re.I)


def comparison(
    delta,
    low,
    high,
    p,
    p_holm,
    *,
    task="openmath",
    metric="exact_match",
    higher=True,
    a="qlora",
    b="lora",
    mdd=0.1,
    **extra,
):
    return pd.Series(
        {
            "ci_method": "exact",
            "ties": "",
            "alpha_effective": 0.05,
            "n_seeds": 1,
            "trained": int(a != "base") + int(b != "base"),
            "seed_delta_min": delta,
            "seed_delta_max": delta,
            "task": task,
            "metric": metric,
            "method_a": a,
            "method_b": b,
            "delta": delta,
            "ci_low": low,
            "ci_high": high,
            "p_value": p,
            "p_holm": p_holm,
            "test": "mcnemar_exact",
            "n": 500,
            "higher_is_better": higher,
            "primary": True,
            "mdd": mdd,
            **extra,
        }
    )


def resources(lora_mb=1000.0, qlora_mb=600.0, lora_s=100.0, qlora_s=130.0):
    rows = []
    for method, mb, s in (("lora", lora_mb, lora_s), ("qlora", qlora_mb, qlora_s)):
        rows.append(
            {
                "method": method,
                "phase": "train",
                "peak_memory_mb": mb,
                "memory_kind": "cuda",
                "weights_mb": mb / 2,
                "wall_s": s,
                "tokens_per_s": 1000.0 / s,
                "n_seeds": 1,
            }
        )
    return pd.DataFrame(rows)


def test_a_significant_loss_is_called_worse_and_never_graded_small():
    # The seed report called a 16,846-point loss "relatively small".
    v = verdict(comparison(-0.04, -0.07, -0.01, 0.003, 0.01), alpha=0.05)
    assert v.kind == "worse"
    assert "worse" in v.sentence and "\u22120.040" in v.sentence
    assert not GRADING_WORDS.search(v.sentence)


def test_a_non_significant_gain_is_never_called_a_win():
    v = verdict(comparison(0.03, -0.01, 0.07, 0.2, 0.6), alpha=0.05)
    assert v.kind == "no detectable difference"
    assert not WIN_WORDS.search(v.sentence)
    assert "\u00b10.100" in v.sentence  # says what the study could have detected


def test_significance_is_judged_after_the_holm_correction():
    # Unadjusted p and interval suggest a gain; the corrected p does not: not claimed, and said why.
    v = verdict(comparison(0.09, 0.04, 0.15, 0.004, 0.051, a="qlora", b="base"), alpha=0.05)
    assert v.kind == "no detectable difference"
    assert "significant before correction (p = 0.004) but not after Holm's correction" in v.sentence
    assert "interval excludes 0" not in v.sentence
    assert not WIN_WORDS.search(v.sentence.split("Holm-adjusted")[0])


def test_an_interval_that_excludes_zero_while_the_test_does_not_is_named_as_such():
    # A bootstrap interval and a permutation test can disagree at the margin; the words must
    # not blame Holm's correction for it (the seed report always did).
    row = comparison(0.05, 0.004, 0.09, 0.07, 1.0, metric="f1", test="paired_permutation", ci_method="bootstrap")
    v = verdict(row, alpha=0.05)
    assert v.kind == "no detectable difference"
    assert "95% bootstrap interval excludes 0, but the paired permutation test does not reject" in v.sentence
    assert "Holm's correction" not in v.sentence.split("Holm-adjusted")[1]


def test_the_detectable_difference_is_stated_at_the_comparisons_holm_level():
    v = verdict(comparison(-0.09, -0.15, -0.04, 0.004, 0.062, mdd=0.109, alpha_effective=0.05 / 16), alpha=0.05)
    assert "Holm level (\u03b1 = 0.0031)" in v.sentence
    assert "about \u00b10.109 or more would be detected" in v.sentence


def test_no_detectable_difference_never_claims_a_detectable_size_below_the_observed_delta():
    # |delta| above the stated MDD, yet the exact test does not reject: the sentence must not
    # say that only differences above the MDD would have been detected.
    v = verdict(comparison(0.12, 0.01, 0.2, 0.2, 1.0, mdd=0.08), alpha=0.05)
    assert v.kind == "no detectable difference"
    assert "only a difference of about" not in v.sentence
    assert "reaches the \u00b10.080" in v.sentence and "does not reject it there" in v.sentence


def test_a_detectable_difference_beyond_the_scale_is_said_to_be_none():
    # Two seeds that disagree leave about one degree of freedom: the t approximation's MDD
    # exceeds any possible difference of fractions, and the words say so instead of "+-2.553".
    row = comparison(-0.08, -0.5, 0.35, 0.39, 1.0, metric="exact_match", mdd=2.553, n_seeds=2, test="seed_item_t")
    v = verdict(row, alpha=0.05)
    assert "not even the largest possible difference (\u00b11) would be detected" in v.sentence
    assert "only a difference of about" not in v.sentence


def test_all_tied_items_are_said_in_words_not_as_a_zero_width_interval():
    row = comparison(0.0, -0.036, 0.036, 1.0, 1.0, metric="f1", ties="all_tied", ci_method="bound", mdd=float("nan"))
    v = verdict(row, alpha=0.05)
    assert "all 500 items scored identically under both methods; 95% interval [\u22120.036, +0.036]" in v.sentence
    assert "[+0.000, +0.000]" not in v.sentence and "only a difference of about" not in v.sentence
    constant = comparison(0.1, 0.1, 0.1, 0.002, 0.01, metric="f1", ties="constant", ci_method="bootstrap")
    v = verdict(constant, alpha=0.05)
    assert "every one of the 500 items differs by exactly +0.100" in v.sentence
    assert "[+0.100, +0.100]" not in v.sentence


def test_a_verdict_between_trained_methods_says_whether_seed_variance_was_estimated():
    one = verdict(comparison(-0.04, -0.07, -0.01, 0.003, 0.01), alpha=0.05)
    assert one.kind == "worse" and "run-to-run training variance is not estimated" in one.sentence
    several = comparison(
        -0.04, -0.07, -0.01, 0.003, 0.01, n_seeds=3, seed_delta_min=-0.06, seed_delta_max=-0.02, test="seed_item_t"
    )
    v = verdict(several, alpha=0.05)
    assert "Over 3 seeds the per-seed \u0394 ranged from \u22120.060 to \u22120.020" in v.sentence
    assert "t test over items and seeds" in v.sentence and "not estimated" not in v.sentence
    # The untrained base against itself has no training variance to speak of.
    base = comparison(-0.04, -0.07, -0.01, 0.003, 0.01, a="base", b="base")
    assert "seed" not in verdict(base, alpha=0.05).sentence


def test_direction_comes_from_the_metric():
    # A lower no-answer rate is an improvement.
    v = verdict(comparison(-0.2, -0.3, -0.1, 0.001, 0.002, metric="no_answer_rate", higher=False), alpha=0.05)
    assert v.kind == "better"
    v = verdict(comparison(0.2, 0.1, 0.3, 0.001, 0.002, metric="no_answer_rate", higher=False), alpha=0.05)
    assert v.kind == "worse"


def test_every_number_in_a_verdict_matches_the_row():
    row = comparison(0.123, 0.045, 0.201, 0.0004, 0.0012)
    v = verdict(row, alpha=0.05)
    for text in ("+0.123", "+0.045", "+0.201", "p < 0.001", "Holm-adjusted p = 0.001", "n = 500"):
        assert text in v.sentence


def test_costs_are_percent_changes_relative_to_lora():
    sentences, figures = cost_sentences(resources(), QLORA, LORA)
    assert figures["memory_pct"] == pytest.approx(-40.0) and figures["time_pct"] == pytest.approx(30.0)
    assert "40.0% lower" in sentences[0] and "30.0% longer" in sentences[1]


def test_qloras_weights_are_those_it_trains_with_after_k_bit_preparation():
    table = resources()
    table["weights_after_prepare_mb"] = [None, 450.0]  # LoRA has no preparation; QLoRA's upcasts to fp32
    sentences, figures = cost_sentences(table, QLORA, LORA)
    assert figures["weights_pct"] == pytest.approx(-10.0)  # 450 MB against LoRA's 500, not 300 against 500
    assert "450.00 MB vs 500.00 MB" in sentences[0]


def test_out_of_memory_advice_names_only_settings_that_are_not_already_on():
    from lorastudy.study.load import load_config
    from lorastudy.train.loop import memory_advice

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "params" / "qwen3-0.6b.yaml")  # gradient checkpointing is on there
    advice = memory_advice(cfg)
    assert "gradient_checkpointing" not in advice and "train.batch_size (now 4)" in advice
    frugal = {
        "train.batch_size": 1,
        "train.gradient_checkpointing": True,
        "train.optim": "paged_adamw_8bit",
        "data.max_seq_len": 128,
    }
    assert memory_advice(load_config(root / "params" / "qwen3-0.6b.yaml", frugal)).startswith("every memory-saving")


def test_recommendation_follows_the_verdicts():
    no_diff = pd.DataFrame([comparison(-0.01, -0.05, 0.03, 0.6, 1.0)])
    worse = pd.DataFrame([comparison(-0.05, -0.08, -0.02, 0.001, 0.003)])
    assert recommendation(no_diff, resources(), 0.05, QLORA, LORA).startswith("QLoRA, where memory is the constraint")
    text = recommendation(worse, resources(), 0.05, QLORA, LORA)
    assert text.startswith("Prefer LoRA") and "worse" in text and "does not fit in memory" in text
    # Worse and no memory saved: nothing to trade the loss for, so no "choose QLoRA if LoRA does not fit".
    text = recommendation(worse, resources(qlora_mb=1073.0), 0.05, QLORA, LORA)
    assert text.startswith("LoRA: QLoRA scored measurably worse") and "7.3% higher" in text
    assert "does not fit" not in text
    # No meaningful memory saving: LoRA, whatever the accuracy verdicts.
    text = recommendation(no_diff, resources(qlora_mb=990.0), 0.05, QLORA, LORA)
    assert text.startswith("LoRA") and "1.0% lower" in text
    assert recommendation(no_diff, resources().query("method == 'lora'"), 0.05, QLORA, LORA).startswith(
        "No recommendation"
    )
