"""The rule-based words: each verdict follows from the numbers beside it."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from lorastudy.methods.builtin import LORA, QLORA
from lorastudy.report.recommendation import cost_sentences, recommendation
from lorastudy.report.verdicts import verdict, verdict_cell
from lorastudy.results.decisions import verdict_of

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
    """A comparisons row as results.decisions leaves it: the verdict interval defaults to the
    given one, and the verdict is decided by the same rule as the study's."""
    trained = int(a != "base") + int(b != "base")
    row = pd.Series(
        {
            "verdict_ci_low": low,
            "verdict_ci_high": high,
            "margin": 0.02 if trained == 2 else float("nan"),
            "bound": "",
            "provisional": trained == 2 and extra.get("n_seeds", 1) == 1,
            "seed_share": float("nan"),
            "ci_method": "exact",
            "ties": "",
            "alpha_effective": 0.05,
            "n_seeds": 1,
            "trained": trained,
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
    if "verdict" not in extra:
        row["verdict"] = verdict_of(row, 0.05)
    return row


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
    v = verdict(comparison(0.03, -0.01, 0.07, 0.2, 0.6, b="base"), alpha=0.05)
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
    row = comparison(
        0.05, 0.004, 0.09, 0.07, 1.0, metric="f1", test="paired_permutation", ci_method="bootstrap", b="base"
    )
    row["verdict_ci_low"], row["verdict_ci_high"] = -0.01, 0.11  # the permutation test's own, at the Holm level
    v = verdict(row, alpha=0.05)
    assert v.kind == "no detectable difference"
    assert "95% bootstrap interval excludes 0, but the paired permutation test does not reject" in v.sentence
    assert "Holm's correction" not in v.sentence.split("Holm-adjusted")[1]


def test_the_detectable_difference_is_stated_at_the_comparisons_holm_level():
    row = comparison(-0.09, -0.15, -0.04, 0.004, 0.062, mdd=0.109, alpha_effective=0.05 / 16, b="base")
    v = verdict(row, alpha=0.05)
    assert "Holm level (\u03b1 = 0.0031)" in v.sentence
    assert "about \u00b10.109 or more would be detected" in v.sentence


def test_no_detectable_difference_never_claims_a_detectable_size_below_the_observed_delta():
    # |delta| above the stated MDD, yet the exact test does not reject: the sentence must not
    # say that only differences above the MDD would have been detected.
    v = verdict(comparison(0.12, 0.01, 0.2, 0.2, 1.0, mdd=0.08, b="base"), alpha=0.05)
    assert v.kind == "no detectable difference"
    assert "only a difference of about" not in v.sentence
    assert "reaches the \u00b10.080" in v.sentence and "does not reject it there" in v.sentence


def test_a_detectable_difference_beyond_the_scale_is_said_to_be_none():
    # Two seeds leave one degree of freedom: the test's detectable difference exceeds any
    # possible difference of fractions, and the words say so instead of "+-2.553".
    row = comparison(
        -0.08, -0.5, 0.35, 0.39, 1.0, metric="exact_match", mdd=2.553, n_seeds=2, test="seed_item_bf", b="base"
    )
    v = verdict(row, alpha=0.05)
    assert "not even the largest possible difference (\u00b11) would be detected" in v.sentence
    assert "only a difference of about" not in v.sentence


def test_all_tied_items_are_said_in_words_not_as_a_zero_width_interval():
    row = comparison(
        0.0, -0.036, 0.036, 1.0, 1.0, metric="f1", ties="all_tied", ci_method="bound", mdd=float("nan"), b="base"
    )
    v = verdict(row, alpha=0.05)
    assert (
        "all 500 items scored identically under both methods; 95% interval, this comparison's Holm level: "
        "[\u22120.036, +0.036]"
    ) in v.sentence
    assert "[+0.000, +0.000]" not in v.sentence and "only a difference of about" not in v.sentence
    constant = comparison(0.1, 0.1, 0.1, 0.002, 0.01, metric="f1", ties="constant", ci_method="bootstrap", b="base")
    v = verdict(constant, alpha=0.05)
    assert "every one of the 500 items differs by exactly +0.100" in v.sentence
    assert "[+0.100, +0.100]" not in v.sentence


def test_a_verdict_between_trained_methods_says_whether_seed_variance_was_estimated():
    one = verdict(comparison(-0.04, -0.07, -0.01, 0.003, 0.01, b="base"), alpha=0.05)
    assert one.kind == "worse" and "run-to-run training variance is not estimated" in one.sentence
    several = comparison(
        -0.04,
        -0.07,
        -0.01,
        0.003,
        0.01,
        n_seeds=3,
        seed_delta_min=-0.06,
        seed_delta_max=-0.02,
        test="seed_item_bf",
        seed_share=0.62,
    )
    v = verdict(several, alpha=0.05)
    assert "Over 3 seeds the per-seed \u0394 ranged from \u22120.060 to \u22120.020" in v.sentence
    assert "62% of the variance of \u0394 comes from the seeds, 38% from the items" in v.sentence
    assert "Behrens\u2013Fisher test over seeds and items" in v.sentence and "not estimated" not in v.sentence
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
    seeded = {"n_seeds": 3}
    no_diff = pd.DataFrame([comparison(-0.01, -0.05, 0.03, 0.6, 1.0, **seeded)])
    worse = pd.DataFrame([comparison(-0.05, -0.08, -0.02, 0.001, 0.003, **seeded)])
    text = recommendation(no_diff, resources(), 0.05, QLORA, LORA)
    assert text.startswith("QLoRA, where memory is the constraint")
    assert "undecided on OpenMath (held out), where a difference beyond the margin is not ruled out" in text
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
    equivalent = pd.DataFrame([comparison(-0.004, -0.012, 0.008, 0.4, 1.0, **seeded)])
    assert "equivalent on OpenMath (held out) (within \u00b10.020)" in recommendation(
        equivalent, resources(), 0.05, QLORA, LORA
    )


def test_a_recommendation_on_one_training_run_says_so():
    worse = pd.DataFrame([comparison(-0.05, -0.08, -0.02, 0.001, 0.003)])  # one seed
    text = recommendation(worse, resources(), 0.05, QLORA, LORA)
    assert text.startswith("Provisional, resting on one training run per method")
    assert "Prefer LoRA" in text


# ---------------------------------------------------------------- verdicts between trained methods


def test_one_training_run_makes_a_verdict_between_trained_methods_provisional_and_never_bold():
    row = comparison(-0.04, -0.07, -0.01, 0.003, 0.01)  # QLoRA vs LoRA, one seed
    v = verdict(row, alpha=0.05)
    assert v.kind == "worse" and v.provisional and v.words == "provisional: worse"
    assert "Provisional: one training run per method" in v.sentence and "another seed may reverse" in v.sentence
    assert not verdict_cell(row).startswith("**")
    seeded = comparison(-0.04, -0.07, -0.01, 0.003, 0.01, n_seeds=3)
    assert verdict_cell(seeded).startswith("**worse**") and not verdict(seeded, alpha=0.05).provisional
    # Against the untrained base a verdict keeps its form, bold, with its caveat.
    base = comparison(-0.04, -0.07, -0.01, 0.003, 0.01, b="base")
    assert verdict_cell(base).startswith("**worse**") and not verdict(base, alpha=0.05).provisional


@pytest.mark.parametrize(
    ("low", "high", "p", "p_holm", "words"),
    [
        (-0.012, 0.008, 0.4, 1.0, "equivalent within \u00b10.020"),
        (-0.07, -0.01, 0.003, 0.01, "worse"),
        (0.01, 0.07, 0.003, 0.01, "better"),
        (-0.05, 0.03, 0.6, 1.0, "inconclusive: the interval [\u22120.050, +0.030] is wider than the margin"),
        # Narrower than the margin's span, yet past one end of it: said so, not "wider".
        (-0.012, 0.025, 0.6, 1.0, "inconclusive: the interval [\u22120.012, +0.025] reaches beyond the margin"),
    ],
)
def test_qlora_against_lora_is_equivalent_worse_better_or_inconclusive_never_no_detectable_difference(
    low, high, p, p_holm, words
):
    delta = (low + high) / 2
    v = verdict(comparison(delta, low, high, p, p_holm, n_seeds=3), alpha=0.05)
    assert v.words == words
    assert "no detectable difference" not in v.sentence
    if words.startswith("equivalent"):
        assert "both reject" in v.sentence


def test_a_margin_of_the_study_is_the_one_its_verdict_uses():
    row = comparison(-0.02, -0.04, 0.0, 0.06, 1.0, n_seeds=3, margin=0.05)
    row["verdict"] = verdict_of(row, 0.05)
    assert verdict(row, alpha=0.05).words == "equivalent within \u00b10.050"


@pytest.mark.parametrize("bound", ["floor", "ceiling"])
def test_a_metric_at_its_floor_or_ceiling_cannot_separate_the_methods(bound):
    value = 0.0 if bound == "floor" else 1.0
    row = comparison(0.0, -0.036, 0.036, 1.0, 1.0, ties="all_tied", ci_method="bound", bound=bound, b="base")
    row["verdict"] = verdict_of(row, 0.05)
    v = verdict(row, alpha=0.05)
    assert v.kind == "cannot separate"
    assert v.words == f"cannot separate the methods: both scored {value:.3f} on every item"
    assert "no detectable difference" not in v.sentence and "unknown, not zero" in v.sentence
    # Not so when only one of the two is at the bound: then the comparison is an ordinary one.
    other = comparison(0.0, -0.036, 0.036, 1.0, 1.0, ties="all_tied", ci_method="bound", b="base")
    assert verdict(other, alpha=0.05).kind == "no detectable difference"


@pytest.mark.parametrize(
    ("low", "high", "p_holm"),
    [(-0.171, 0.0, 0.06), (-0.15, 0.01, 0.2), (-0.15, -0.01, 0.01)],
)
def test_the_interval_beside_a_verdict_is_the_one_it_rests_on(low, high, p_holm):
    # The smoke report printed "no detectable difference: -0.090 [-0.150, -0.030]": a 95% interval
    # beside a verdict at the Holm level. The cell and the sentence show the Holm-level interval.
    row = comparison(-0.09, -0.16, -0.02, 0.004, p_holm, b="base")
    row["verdict_ci_low"], row["verdict_ci_high"] = low, high
    cell, v = verdict_cell(row), verdict(row, alpha=0.05)
    shown = f"[{low:+.3f}, {high:+.3f}]".replace("-", "\u2212")
    assert shown in cell and shown in v.sentence
    assert "[\u22120.160, \u22120.020]" not in cell + v.sentence
