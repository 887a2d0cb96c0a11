"""The result tables and the report's words on recorded per-item scores, without a model:
each comparison's test, interval, detectable difference and verdict, and what the report
says where every item ties, where seeds vary, and where a metric has no value at all."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lorastudy import report, results, tasks
from lorastudy.report import verdicts
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
from lorastudy.study.runs import runs_of

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "params" / "smoke.yaml"
N = 100


def _binary(rng: np.random.Generator, rate: float) -> list[float]:
    return [float(v) for v in rng.random(N) < rate]


def smoke_like(run: str, seed: int) -> dict[str, dict[str, list]]:
    """Per-item scores shaped like the smoke study's: the base gets 9 SQuAD items right, the
    adapters none (every F1 is 0 or 1, yet F1 is continuous); fine-tuning helps OpenMath."""
    rng = np.random.default_rng([sum(map(ord, run)), seed])
    tuned = run != "base"
    errors = [None if i % 10 == 0 else float(i % 7) for i in range(N)] if tuned else [1807.0] * N
    return {
        "arc_challenge": {"acc": _binary(rng, 0.8), "acc_norm": _binary(rng, 0.65)},
        "openmath": {
            "exact_match": _binary(rng, 0.27 if tuned else 0.0),
            "no_answer_rate": [float(e is None) for e in errors],
            "abs_error": errors,
            "answer_source": ["boxed" if tuned else "last_number"] * (N - 10) + ["none"] * 9 + ["last_number"],
            "non_finite": [False] * (N - 1) + [True],
        },
        "squad": {
            "exact_match": [1.0] * 9 + [0.0] * 91 if not tuned else [0.0] * N,
            "f1": [1.0] * 9 + [0.0] * 91 if not tuned else [0.0] * N,
        },
    }


def study(tmp_path: Path, seeds=(0,), methods=("base", "lora", "qlora"), data=smoke_like) -> results.StudyResults:
    cfg = load_config(SMOKE, {"seeds": list(seeds), "methods": list(methods)}, root=tmp_path)
    items = {}
    for run in runs_of(cfg):
        columns = data(run.name, run.seed)
        for t in cfg.tasks:
            cols = columns[t.name]
            scored = [m.key for m in tasks.get(t.name).metrics]
            extra = [k for k in cols if k not in scored]
            items[(run.name, t.name)] = [
                {"id": f"{t.name}-{i}", "scores": {m: cols[m][i] for m in scored}, **{k: cols[k][i] for k in extra}}
                for i in range(N)
            ]
    evals = {run.name: {"tasks": {t.name: {"metrics": {}} for t in cfg.tasks}} for run in runs_of(cfg)}
    res = results.StudyResults(cfg, StudyPaths(tmp_path, cfg.study), runs_of(cfg), {}, evals, items, {})
    res.metrics, res.metrics_by_seed = results.metric_table(res)
    res.comparisons = results.comparison_table(res)
    res.resources = pd.DataFrame(columns=["method", "phase"])
    return res


def test_no_detectable_difference_never_comes_with_a_delta_above_its_mdd(tmp_path):
    res = study(tmp_path)
    c = res.comparisons
    assert len(c) == 18
    for _, row in c.iterrows():
        kind = verdicts.verdict(row, 0.05).kind
        if kind == "no detectable difference" and not np.isnan(row.mdd):
            assert abs(row.delta) < row.mdd, row.to_dict()
    # The seed report's sentence: SQuAD F1, delta -0.090, said to be detectable from +-0.081.
    squad = c[(c.task == "squad") & (c.metric == "f1") & (c.method_a == "lora")].iloc[0]
    assert squad.delta == pytest.approx(-0.09) and squad.p_value < 0.05 <= squad.p_holm
    assert squad.mdd > 0.09
    # The MDD is taken at the level Holm demands of each comparison, never at alpha.
    assert (c.alpha_effective < 0.05).all()
    # And the words: a sentence that states a detectable size states one above its delta.
    sentences = [v.sentence for _, v in verdicts.primary_verdicts(c, 0.05)]
    stated = [s for s in sentences if "only a difference of about" in s]
    assert stated
    for sentence in stated:
        delta = float(re.search(r"\u0394 = ([+\u2212]\d\.\d+)", sentence).group(1).replace("\u2212", "-"))
        size = float(re.search(r"about \u00b1(\d\.\d+) or more", sentence).group(1))
        assert abs(delta) < size, sentence


def test_the_test_is_declared_per_metric_and_the_caption_is_true_for_every_row(tmp_path):
    res = study(tmp_path)
    c = res.comparisons
    # Every F1 value here is 0 or 1, and F1 is still compared as the continuous score it is.
    assert set(c[c.metric == "f1"].test) == {"paired_permutation"}
    assert set(c[c.metric != "f1"].test) == {"mcnemar_exact"}
    caption = next(p for p in report.comparisons_table(res).split("\n\n") if p.startswith("Paired differences"))
    for _, row in c.iterrows():
        described = {"mcnemar_exact": "exact McNemar test", "paired_permutation": "paired permutation"}[row.test]
        clause = next(part for part in caption.split(";") if described in part)
        assert row.metric in clause, (row.test, row.metric, clause)


def test_ties_are_said_in_words_and_never_shown_as_a_zero_width_interval(tmp_path):
    res = study(tmp_path)
    m = res.metrics
    zeros = m[(m.method == "lora") & (m.task == "squad")]
    assert (zeros.value == 0).all() and (zeros.ci_high > 0.03).all()
    text = report.executive_summary(res) + report.performance_tables(res) + report.comparisons_table(res)
    assert "[+0.000, +0.000]" not in text and "[0.000, 0.000]" not in text
    assert "0.000 [0.000, 0.036] (all 100 items scored 0.000)" in text
    assert (
        "QLoRA vs LoRA on SQuAD v1.1, f1 (n = 100): cannot separate the methods: both scored 0.000 on every item, "
        "\u0394 = +0.000 (all 100 items scored identically"
    ) in text


def test_the_executive_summary_opens_with_the_answer_then_the_verdict_table(tmp_path):
    res = study(tmp_path)
    summary = report.executive_summary(res)
    lines = summary.splitlines()
    assert lines[2].startswith("**The answer.** QLoRA against LoRA, provisional on one training run each: ")
    assert lines[4].startswith("**Recommendation.** ")
    table_start = next(i for i, line in enumerate(lines) if line.startswith("| comparison "))
    assert table_start == 6 and not any(line.startswith("- ") for line in lines)
    header = [cell.strip() for cell in lines[table_start].split("|")[1:-1]]
    assert [h.split(" (")[0] for h in header] == ["comparison", "ARC-Challenge", "OpenMath", "SQuAD v1.1"]
    # One row per comparison, in the declarations' order.
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[table_start + 2 : table_start + 5]]
    assert [r[0] for r in rows] == ["LoRA vs base", "QLoRA vs base", "QLoRA vs LoRA"]
    assert re.search(r"\*\*better\*\*: \+0\.\d{3} \[\+0\.\d{3}, \+0\.\d{3}\]", rows[0][2])
    assert "cannot separate the methods: both scored 0.000 on every item (\u0394 +0.000)" in rows[2][3]
    # The answer says the same verdicts; each comparison's sentence is under Comparisons, once.
    assert "cannot separate the methods on SQuAD v1.1 (both at the metric's floor on every item)" in lines[2]
    comparisons = report.comparisons_table(res)
    for sentence in ("LoRA vs the base model on ARC-Challenge, acc_norm", "QLoRA vs LoRA on SQuAD v1.1, f1"):
        assert comparisons.count(f"- {sentence}") == 1 and sentence not in summary


def test_the_comparisons_section_states_which_pairs_it_compares_and_why(tmp_path):
    res = study(tmp_path)
    text = report.comparisons_table(res)
    assert "Of the 3 pairs the study's 3 methods form, the report compares the 3" in text
    assert "| QLoRA vs LoRA | what training on the 4\\-bit base instead of the 16\\-bit one costs |" in text
    assert set(res.comparisons.reason) == {c.reason for _, _, c in results.comparisons_made(res.cfg)}


def test_one_seed_says_training_variance_is_not_estimated(tmp_path):
    res = study(tmp_path)
    better = [v for row, v in verdicts.primary_verdicts(res.comparisons, 0.05) if v.kind == "better"]
    assert better and all("run-to-run training variance is not estimated" in v.sentence for v in better)


def test_several_seeds_show_the_spread_and_the_comparison_counts_it(tmp_path):
    res = study(tmp_path, seeds=(0, 1))
    c = res.comparisons
    trained = c[c.trained > 0]
    assert set(trained.test) == {"seed_item_bf"} and (trained.n_seeds == 2).all()
    assert (trained.seed_delta_min <= trained.delta).all() and (trained.delta <= trained.seed_delta_max).all()
    table = report.comparisons_table(res)
    assert "per-seed \u0394" in table and "Behrens\u2013Fisher test over seeds and items" in table
    sentences = [v.sentence for _, v in verdicts.primary_verdicts(c, 0.05)]
    assert all("Over 2 seeds the per-seed \u0394 ranged from" in s for s in sentences)
    assert "seed sd" in report.performance_tables(res)


def test_the_median_error_says_over_which_outputs_items_and_seeds(tmp_path):
    res = study(tmp_path, seeds=(0, 1))
    m = res.metrics
    row = m[(m.method == "lora") & (m.metric == "median_abs_error")].iloc[0]
    # 90 of 100 items have a number in each of the 2 seeds' outputs: 180 outputs.
    assert row.n == 180 and row.n_items_with_value == 90 and row.n_items == 100 and row.n_seeds == 2
    errors = [e for s in (0, 1) for e in smoke_like(f"lora_seed{s}", s)["openmath"]["abs_error"] if e is not None]
    assert row.value == pytest.approx(np.median(errors))
    assert "median of the 180 outputs with a finite number: 90 of 100 items \u00d7 2 seeds" in (
        report.performance_tables(res)
    )


def test_a_metric_with_no_value_is_said_to_be_undefined(tmp_path):
    def no_numbers(run, seed):
        data = smoke_like(run, seed)
        data["openmath"]["abs_error"] = [None] * N
        return data

    res = study(tmp_path, data=no_numbers)
    assert res.metrics[res.metrics.metric == "median_abs_error"].empty
    assert "not defined (none of the 100 outputs had a finite number)" in report.performance_tables(res)


def test_the_openmath_section_shows_how_answers_were_found(tmp_path):
    res = study(tmp_path)
    text = report.performance_tables(res)
    openmath = text.split("### OpenMath")[1].split("### SQuAD")[0]
    assert "| LoRA | 90% (90) | 0% (0) | 1% (1) | 9% (9) | 1 |" in openmath
    assert "| base | 0% (0) | 0% (0) | 91% (91) | 9% (9) | 1 |" in openmath
