"""Numeric math answers (GSM8K / MATH / OpenMathInstruct-2): :func:`extract_answer` reads the
final answer of a free-form generation and records where it was found (``boxed``,
``answer_is``, ``last_number`` or ``none``), :func:`parse_expected_answer` parses a dataset's
reference answer (strictly, so it can be used to keep only numerically-gradable problems),
and :func:`answer_matches` compares the two.

How this compares with the math evaluation code of Qwen2.5-Math
(``evaluation/parser.py`` ``extract_answer``/``strip_string``, ``evaluation/grader.py``
``math_equal``) and DeepSeek-Math (``evaluation/data_processing/answer_extraction.py``,
``evaluation/eval/eval_utils.py`` ``math_equal``), read from their repositories:

* Same: the last ``\\boxed{}`` decides when there is one, and numbers outside it are
  never used instead; then "the answer is"; then the last number. ``\\dfrac``/``\\tfrac``,
  ``\\!``, ``$``, units after the number, "x = " before it and ``a/b`` as a whole answer
  are read as they do. An empty ``\\boxed{}`` is an empty answer, as in theirs.
* Kept differences in extraction: an unbalanced ``\\boxed{`` is ignored (Qwen
  reads whatever follows "boxed"); "answer:" and GSM8K's "####" count as answer markers
  too; after the marker we read the number that starts its line, theirs the whole rest of
  the text; their last-number fallback deletes every comma ("1,2" becomes 12) and reads
  "10-3" as -3, ours keeps commas only in groups of three and reads 3; ``3\\frac{1}{2}``
  is a mixed number, 3.5, where sympy's LaTeX parsers read a product, 1.5; number words
  ("five", which Qwen converts with word2number) are not read.
* Kept differences in equality: only numbers are compared, as the study keeps only
  problems with a numeric reference; theirs fall back to sympy for expressions. Both
  projects also accept a prediction at 100 times or a hundredth of the reference
  (``include_percentage``), which credits 50 for 0.5 on any problem; here a value divided
  by 100 only counts for a side written as a percentage. Tolerance: Qwen uses a relative
  1e-4 (``numeric_equal``), under which 0.3333 against 1/3 sits exactly on the bound and
  passes only by float rounding, while 0.1429 for 1/7 fails and 100001 for 100000
  passes; DeepSeek uses an absolute 1e-3, which passes 0.333 for 1/3 and 0.0005 for
  0.001. Here integers must be equal, and a decimal that is not exactly the reference
  must be it correctly rounded, to at least 4 significant digits (0.3333 and 0.1429 pass;
  0.333, 0.1428 and 100001 do not).

Only the standard library is used so that scoring can run anywhere, including
in a bare CPU environment used to re-score saved generations.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .numbers import LEFT_HAND_SIDE, Read, first_number, last_number, matching_brace, read_single

# Where the final answer of a generation was found, in the order they are tried.
ANSWER_SOURCES = ("boxed", "answer_is", "last_number", "none")


# A decimal that is not exactly the reference must be it correctly rounded, to at least
# this many significant digits (0.3333 and 0.1429 match 1/3 and 1/7; 0.33 does not).
MIN_SIGNIFICANT_DIGITS = 4


# Anything else must be equal up to floating-point rounding.
EXACT_REL_TOL = 1e-9


@dataclass(frozen=True)
class Answer:
    """The final answer read from a model generation."""

    value: float | None  # a finite number, or None when none could be read
    source: str  # one of ANSWER_SOURCES
    text: str = ""  # the box's content or the line after the answer marker; "" for last_number
    percent: bool = False  # written with a percent sign (50%, 50\%, 50 percent)
    decimals: int | None = None  # digits after the point of a plain decimal (0.3333 -> 4), else None
    significant: int | None = None  # significant digits of a plain decimal (0.3333 -> 4), else None
    non_finite: bool = False  # a number too large for a float (400 digits): excluded and counted


_ANSWER_MARKER = re.compile(r"####|\b(?:final\s+)?answer\s*(?:is\b|:)", re.IGNORECASE)


_BOXED_COMMAND = re.compile(r"\\(?:boxed|fbox)\s*\{")


_BOXED_UNIT = re.compile(
    r"(?:\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}|\s*\^\s*\{?\\circ\}?|\s*\u00b0|(?<=[\d}%])\s+[A-Za-z][A-Za-z .]*)\s*$"
)


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} whose braces balance, else None.

    An empty box is the model's final answer, and it is empty: no answer, not a reason to read
    a number elsewhere in the text (Qwen2.5-Math's ``extract_answer`` also reads the last box,
    empty or not). A box whose braces never close (cut at the token limit) is no box at all.
    """
    for m in reversed(list(_BOXED_COMMAND.finditer(text))):
        close = matching_brace(text, m.end() - 1)
        if close is not None:
            return text[m.end() : close]
    return None


def _read_boxed(content: str) -> Read:
    """A box's content as one number, allowing "x = 5", units and degree signs around it."""
    text = LEFT_HAND_SIDE.sub("", content)
    for _ in range(3):
        text = _BOXED_UNIT.sub("", text)
    return read_single(text)


def _answer(read: Read | None, source: str, text: str) -> Answer:
    if read is None or read.value is None:
        return Answer(None, source, text)
    if not math.isfinite(read.value):
        return Answer(None, source, text, read.percent, non_finite=True)
    return Answer(read.value, source, text, read.percent, read.decimals, read.significant)


def extract_answer(text: str) -> Answer:
    """Read the final answer of a model generation, and say where it was found.

    Rules, in order (the first that applies decides; ``source`` names it):

    1. ``boxed``: the content of the last ``\\boxed{...}`` (nested braces handled),
       read as one number, allowing "x = " before it and units or degrees after it. When the
       content is not a number (``\\boxed{five}``, ``\\boxed{2\\sqrt{3}}``) or is empty
       (``\\boxed{}``) the answer is None: numbers elsewhere in the text are not used in its place.
    2. ``answer_is``: the number that starts the line after the last "the answer is",
       "final answer:", "answer:" or "####" ("$" or "x =" may come first; an ``a/b`` there is
       a fraction). A marker not followed by a number ("the answer is unclear") is prose,
       and the next rule applies.
    3. ``last_number``: the whole text as an ``a/b`` fraction, else its last number.
    4. ``none``: no number at all.

    Numbers are read in the forms a math model writes: ``1,234`` (groups of three only),
    ``1{,}234``, ``1\\!234``, ``$``, ``\\frac``/``\\dfrac``/``\\tfrac``/``\\cfrac``,
    ``3\\frac{1}{2}`` (a mixed number: 3.5), ``10^3``, ``1.5 \\times 10^{3}``, ``1.5e3`` and
    percentages (``percent`` is recorded). A number too large for a float (a 400-digit
    string, ``10^{400}``) is not turned into infinity: the value is None and ``non_finite``
    is set, so it is excluded and counted. Never raises on string input.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return _answer(_read_boxed(boxed), "boxed", boxed)
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        segment = text[markers[-1].end() :]
        found = first_number(segment)
        if found is not None:
            return _answer(found, "answer_is", segment.strip().split("\n", 1)[0])
    found = last_number(text)
    if found is not None:
        return _answer(found, "last_number", "")
    return Answer(None, "none", "")


def extract_number(text: str) -> float | None:
    """The final answer's value (see :func:`extract_answer`), or None."""
    return extract_answer(text).value


def numbers_match(predicted: float | None, expected: float | None, rel_tol: float = EXACT_REL_TOL) -> bool:
    """Whether ``predicted`` equals ``expected`` up to ``rel_tol`` (float rounding by default).

    A tiny absolute tolerance lets 0 match 0 (and -0.0 or 1e-12 noise), which a
    purely relative test never does. None (no answer extracted) never matches.
    """
    if predicted is None or expected is None:
        return False
    return math.isclose(predicted, expected, rel_tol=rel_tol, abs_tol=1e-9)


def _rounds_to(predicted: float, decimals: int | None, significant: int | None, expected: float) -> bool:
    """``predicted`` is ``expected`` correctly rounded to the decimals it is written with."""
    if decimals is None or significant is None or decimals < 1 or significant < MIN_SIGNIFICANT_DIGITS:
        return False
    return abs(predicted - expected) <= 0.5 * 10.0**-decimals * (1.0 + 1e-9)


def answer_matches(answer: Answer, reference: str) -> bool:
    """Whether an extracted answer equals a reference answer (a dataset's string).

    Equal up to float rounding; or, for an answer written as a decimal, the reference
    correctly rounded to the decimals written with at least ``MIN_SIGNIFICANT_DIGITS``
    significant digits (0.3333 for 1/3, 66.67 for 200/3; not 0.33, not 10001 for 10000).
    When either side is written as a percentage, its value divided by 100 also counts
    (50% matches 0.5 and 50), but a bare 0.5 never matches 50.
    """
    expected = read_single(reference)
    if answer.value is None or expected.value is None or not math.isfinite(expected.value):
        return False
    predictions = [(answer.value, answer.decimals)]
    if answer.percent:
        shifted = None if answer.decimals is None else answer.decimals + 2
        predictions.append((answer.value / 100.0, shifted))
    references = [expected.value] + ([expected.value / 100.0] if expected.percent else [])
    return any(
        numbers_match(p, r) or _rounds_to(p, d, answer.significant, r) for p, d in predictions for r in references
    )


def parse_expected_answer(answer: str) -> float | None:
    """Parse a dataset's reference answer, or None if it is not one finite number.

    Deliberately strict, because it decides which problems are kept: "18", "-2.5",
    "1,000", "\\frac{3}{4}", "3/4", "3\\frac{1}{2}", "10^3", "50\\%" and "$5" parse;
    anything with other text, letters, several numbers or brackets ("x^2+1", "(1,2)",
    "1, 2", "\\frac{\\pi}{2}") gives None.
    """
    value = read_single(answer).value
    return value if value is not None and math.isfinite(value) else None
