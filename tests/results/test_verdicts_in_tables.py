"""The verdicts as the result tables and the report state them, on recorded per-item scores:
the interval beside each verdict agrees with it, verdicts between trained methods are
provisional on one run and decided against a margin on several, a metric at its floor cannot
separate the methods, each comparison says how much of its variance comes from seeds, and no
sentence about the items says what the data do not."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_result_tables import SMOKE, N, smoke_like, study

from lorastudy import report, results
from lorastudy.report import verdicts
from lorastudy.study.load import load_config

ALLOWED_BETWEEN_TRAINED = re.compile(
    r"^(provisional: )?(better|worse|equivalent within \u00b10\.\d{3}|"
    r"inconclusive: the interval \[[+\u2212]\d\.\d{3}, [+\u2212]\d\.\d{3}\] (is wider than|reaches beyond) the margin|"
    r"cannot separate the methods: both scored [01]\.000 on every item)$"
)


def resources() -> pd.DataFrame:
    rows = [
        {"method": m, "phase": "train", "peak_memory_mb": mb, "memory_kind": "cpu_rss", "weights_mb": mb / 2}
        | {"wall_s": s, "tokens_per_s": 1000.0 / s, "n_seeds": 1}
        for m, mb, s in (("lora", 1000.0, 100.0), ("qlora", 600.0, 130.0))
    ]
    return pd.DataFrame(rows)


def qlora_loses_openmath(run: str, seed: int) -> dict:
    """QLoRA answers far fewer OpenMath items than LoRA: a difference a test finds."""
    data = smoke_like(run, seed)
    if run.startswith("qlora"):
        data["openmath"]["exact_match"] = [1.0] * 5 + [0.0] * (N - 5)
    elif run.startswith("lora"):
        data["openmath"]["exact_match"] = [1.0] * 60 + [0.0] * (N - 60)
    return data


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_the_interval_beside_every_verdict_excludes_0_exactly_when_it_claims_a_difference(tmp_path, seeds):
    res = study(tmp_path, seeds=seeds, data=qlora_loses_openmath)
    c = res.comparisons
    excludes = (c.verdict_ci_low > 0) | (c.verdict_ci_high < 0)
    assert (excludes == c.verdict.isin(["better", "worse"])).all(), c[["verdict", "verdict_ci_low", "verdict_ci_high"]]
    assert (c.verdict == "worse").any() and (c.verdict == "better").any()
    if seeds == (0,):
        # The smoke report's disagreement: the 95% interval excludes 0, the verdict (at the Holm
        # level) claims nothing; the interval printed beside it now includes 0.
        squad = c[(c.task == "squad") & (c.metric == "f1") & (c.method_a == "lora")].iloc[0]
        assert squad.ci_high < 0 and squad.verdict == "no detectable difference"
        assert squad.verdict_ci_low < 0 <= squad.verdict_ci_high
    written = pd.read_csv(results.write(res)["comparisons.csv"])
    assert list(written.columns[9:12]) == ["verdict", "verdict_ci_low", "verdict_ci_high"]
    assert written.verdict_ci_low.to_numpy() == pytest.approx(c.verdict_ci_low.to_numpy(), nan_ok=True)
    # The at-a-glance cells show that same interval beside the words.
    summary = report.executive_summary(res)
    for _, row in c[c.primary & (c.ties == "")].iterrows():
        if row.verdict not in ("inconclusive", "cannot separate"):
            assert verdicts.verdict_cell(row).split(": ", 1)[-1].split(" ", 1)[1] in summary


def test_one_run_per_method_makes_verdicts_between_trained_methods_provisional(tmp_path):
    res = study(tmp_path, data=qlora_loses_openmath)
    res.resources = resources()
    c = res.comparisons
    row = c[(c.task == "openmath") & (c.metric == "exact_match") & (c.method_a == "qlora") & (c.method_b == "lora")]
    assert row.iloc[0].verdict == "worse" and bool(row.iloc[0].provisional)
    summary = report.executive_summary(res)
    qlora_lora = next(line for line in summary.splitlines() if line.startswith("| QLoRA vs LoRA"))
    assert "provisional: worse" in qlora_lora and "**" not in qlora_lora
    lora_base = next(line for line in summary.splitlines() if line.startswith("| LoRA vs base"))
    assert "**better**" in lora_base  # against the base a verdict keeps its form
    # and the legend says which bold claims need several seeds, not that every one had them.
    assert "Bold: a claimed difference (between trained methods, over several seeds)" in summary
    assert "another seed may reverse this verdict" in report.comparisons_table(res)
    answer = summary.splitlines()[2]
    assert answer.startswith("**The answer.** QLoRA against LoRA, provisional on one training run each: ")
    assert "worse on OpenMath (held out) (\u0394 \u2212" in answer and "**worse**" not in answer
    assert "**Recommendation.** Provisional, resting on one training run per method" in summary


def test_several_seeds_decide_against_the_margin_and_never_say_no_detectable_difference(tmp_path):
    res = study(tmp_path, seeds=(0, 1, 2), data=qlora_loses_openmath)
    trained = res.comparisons[res.comparisons.trained == 2]
    assert not trained.provisional.any() and (trained.margin == 0.02).all()
    for _, row in trained.iterrows():
        v = verdicts.verdict(row, 0.05)
        assert ALLOWED_BETWEEN_TRAINED.match(v.words), v.words
        assert "no detectable difference" not in v.sentence


def same_runs_but_one_item(run: str, seed: int) -> dict:
    """Seeds that change nothing, and QLoRA differing from LoRA on one OpenMath item."""
    data = smoke_like(run.split("_seed")[0], 0)
    if run.startswith("qlora"):
        data["openmath"]["exact_match"] = smoke_like("lora", 0)["openmath"]["exact_match"][:]
        data["openmath"]["exact_match"][0] = 1.0 - data["openmath"]["exact_match"][0]
    return data


def test_a_study_can_find_two_trained_methods_equivalent_within_its_margin(tmp_path):
    def openmath_row(res):
        c = res.comparisons
        pair = (c.method_a == "qlora") & (c.method_b == "lora")
        return c[(c.task == "openmath") & (c.metric == "exact_match") & pair]

    margin = {"seeds": [0, 1], "report.equivalence_margin": {"openmath": 0.05}}
    res = study(tmp_path, seeds=(0, 1), data=same_runs_but_one_item)
    res.cfg = load_config(SMOKE, margin, root=tmp_path)
    res.comparisons = results.comparison_table(res)
    row = openmath_row(res).iloc[0]
    assert row.verdict == "equivalent" and -0.05 < row.verdict_ci_low and row.verdict_ci_high < 0.05
    assert verdicts.verdict(row, 0.05).words == "equivalent within \u00b10.050"
    # At the default margin the same interval reaches past it: undecided, and the words say so.
    row = openmath_row(study(tmp_path / "default", seeds=(0, 1), data=same_runs_but_one_item)).iloc[0]
    assert row.margin == 0.02 and row.verdict_ci_low < -0.02
    assert verdicts.verdict(row, 0.05).words == (
        f"inconclusive: the interval [{row.verdict_ci_low:+.3f}, {row.verdict_ci_high:+.3f}] is wider than the margin"
    ).replace("-", "\u2212")


def all_at_floor_on_squad(run: str, seed: int) -> dict:
    data = smoke_like(run, seed)
    data["squad"]["exact_match"] = [0.0] * N
    return data


def test_a_metric_at_its_floor_for_every_method_cannot_separate_them(tmp_path):
    res = study(tmp_path, data=all_at_floor_on_squad)
    c = res.comparisons
    floor = c[(c.task == "squad") & (c.metric == "exact_match")]
    assert (floor.verdict == "cannot separate").all() and (floor.bound == "floor").all() and len(floor) == 3
    table = report.comparisons_table(res)
    squad_rows = [line for line in table.splitlines() if line.startswith("| SQuAD v1.1 | exact_match")]
    assert len(squad_rows) == 3 and all("cannot separate the methods: both scored 0.000" in r for r in squad_rows)
    assert not any("no detectable difference" in r for r in squad_rows)
    # Where one run of one method scores an item, the metric can separate them again.

    def one_answer(run, seed):
        data = all_at_floor_on_squad(run, seed)
        if run == "qlora":
            data["squad"]["exact_match"][3] = 1.0
        return data

    c = study(tmp_path / "one", data=one_answer).comparisons
    verdicts_now = set(c[(c.task == "squad") & (c.metric == "exact_match")].verdict)
    assert verdicts_now == {"cannot separate", "inconclusive", "no detectable difference"}


def test_each_trained_method_shows_its_seed_spread_and_each_comparison_its_variance_by_source(tmp_path):
    res = study(tmp_path, seeds=(0, 1, 2))
    m, c = res.metrics, res.comparisons
    lora = m[(m.method == "lora") & (m.task == "openmath") & (m.metric == "exact_match")].iloc[0]
    per_seed = res.metrics_by_seed.query("method == 'lora' and task == 'openmath' and metric == 'exact_match'")
    assert lora.seed_sd == pytest.approx(np.std(per_seed.value, ddof=1))
    # Beside each score in the per-dataset table; the base, evaluated once, has no spread.
    openmath = report.performance_tables(res).split("### OpenMath")[1]
    primary = next(line for line in openmath.splitlines() if line.startswith("| exact_match"))
    base, lora_cell = (cell.strip() for cell in primary.split("|")[2:4])
    assert lora_cell.endswith(f"seed sd {lora.seed_sd:.3f}") and "seed sd" not in base
    assert "Each trained method ran with 3 training seeds (0, 1, 2)" in report.comparisons_table(res)
    assert "A seed sets the adapter's initialisation, the dropout masks and the order of the training batches" in (
        report.comparisons_table(res)
    )
    seeded = c[c.ties == ""]
    assert seeded.seed_share.between(0, 1).all()
    row = seeded[(seeded.task == "openmath") & (seeded.metric == "exact_match") & (seeded.method_a == "qlora")]
    row = row[row.method_b == "lora"].iloc[0]
    share = f"{100 * row.seed_share:.0f}% of the variance of \u0394 comes from the seeds"
    assert share in verdicts.verdict(row, 0.05).sentence
    assert f"{100 * row.seed_share:.0f}% / {100 * (1 - row.seed_share):.0f}%" in report.comparisons_table(res)
