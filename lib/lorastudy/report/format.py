"""How the report writes a figure, in one place: numbers, signed differences, intervals,
p-values, and the words for each statistical test."""

from __future__ import annotations

import math
from dataclasses import dataclass

MINUS = "\u2212"


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def number(x: float | None, digits: int = 3, na: str = "n/a", *, signed: bool = False) -> str:
    """A figure as every table and sentence writes it: thousands separated, a true minus sign,
    no signed zero (a difference that rounds to zero is 0.000, or +0.000 where signed)."""
    if missing(x):
        return na
    x = round(float(x), digits) + 0.0
    text = f"{x:+,.{digits}f}" if signed else f"{x:,.{digits}f}"
    return text.replace("-", MINUS)


def integer(x: float | None, na: str = "n/a") -> str:
    if missing(x):
        return na
    return f"{int(round(x)):,}"


def interval(low: float, high: float, digits: int = 3, *, signed: bool = True) -> str:
    """An interval: a difference's, [−0.120, +0.040]; a score's (signed=False), [0.710, 0.870]."""
    return f"[{number(low, digits, signed=signed)}, {number(high, digits, signed=signed)}]"


def percent(share: float, na: str = "n/a") -> str:
    """A share as a whole percentage: 0.623 is 62%."""
    return na if missing(share) else f"{100.0 * share:.0f}%"


def level(confidence: float) -> str:
    """A confidence level as few digits as it needs: 95%, 99.69%."""
    return f"{100.0 * confidence:.2f}".rstrip("0").rstrip(".") + "%"


def margin(m: float) -> str:
    """An equivalence margin, ±0.020."""
    return f"±{number(m)}"


def p_value(p: float, *, bare: bool = False) -> str:
    """p = 0.012, p < 0.001; bare (a table's cell): 0.012, < 0.001."""
    text = "< 0.001" if p < 0.001 else f"{p:.3f}"
    if bare:
        return text
    return f"p {text}" if p < 0.001 else f"p = {text}"


@dataclass(frozen=True)
class TestWords:
    name: str  # in a sentence: "exact McNemar test"
    description: str  # in the comparisons table's caption: the test and its interval


TESTS = {
    "mcnemar_exact": TestWords(
        "exact McNemar test",
        "the exact McNemar test with an exact interval that excludes 0 exactly when the test rejects "
        "(Clopper\u2013Pearson for the discordant pairs' direction and rate, hence conservative)",
    ),
    "paired_permutation": TestWords(
        "paired permutation test",
        "a paired permutation (sign-flip) test with a percentile paired bootstrap interval",
    ),
    "seed_item_bf": TestWords(
        "Behrens\u2013Fisher test over seeds and items",
        "with several seeds, a test and interval whose variance adds each trained method's seed-to-seed variance "
        "of its score to item sampling (Bouthillier et al. 2021), on the Behrens\u2013Fisher distribution with "
        "the seed part's S \u2212 1 degrees of freedom, which holds its level at 2 to 5 seeds in simulation",
    ),
}


def test_name(test: str) -> str:
    return TESTS[test].name if test in TESTS else test
