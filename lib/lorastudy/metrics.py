"""Per-item scoring functions for the LoRA vs QLoRA study.

Two families of metrics live here:

* SQuAD-style extractive QA: :func:`normalize_answer`, :func:`squad_em` and
  :func:`squad_f1` reproduce the official SQuAD v1.1 evaluation script exactly, so our
  numbers are comparable with published ones. That includes its edge case: F1 is 0 when
  prediction and answer share no token, even when both normalise to nothing ("a" against
  "the"), while exact match calls that pair equal (the v2.0 script differs; v1.1 is the
  dataset evaluated here).
* Numeric math answers (GSM8K / MATH / OpenMathInstruct-2):
  :func:`extract_answer` reads the final answer of a free-form generation and records
  where it was found (``boxed``, ``answer_is``, ``last_number`` or ``none``),
  :func:`parse_expected_answer` parses a dataset's reference answer (strictly,
  so it can be used to keep only numerically-gradable problems), and
  :func:`answer_matches` compares the two.

How this compares with the math evaluation code of Qwen2.5-Math
(``evaluation/parser.py`` ``extract_answer``/``strip_string``, ``evaluation/grader.py``
``math_equal``) and DeepSeek-Math (``evaluation/data_processing/answer_extraction.py``,
``evaluation/eval/eval_utils.py`` ``math_equal``), read from their repositories:

* Same: the last ``\\boxed{}`` decides when there is one, and numbers outside it are
  never used instead; then "the answer is"; then the last number. ``\\dfrac``/``\\tfrac``,
  ``\\!``, ``$``, units after the number, "x = " before it and ``a/b`` as a whole answer
  are read as they do.
* Kept differences in extraction: an empty or unbalanced ``\\boxed{`` is ignored (Qwen
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
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ANSWER_SOURCES",
    "Answer",
    "normalize_answer",
    "squad_em",
    "squad_f1",
    "extract_answer",
    "extract_number",
    "answer_matches",
    "numbers_match",
    "parse_expected_answer",
]


# --------------------------------------------------------------------------
# SQuAD exact match and token F1
# --------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(s: str) -> str:
    """Normalise an answer exactly as the official SQuAD v1.1 script does.

    Order matters and follows the script: lower case, strip punctuation,
    replace the articles a/an/the by a space, then collapse whitespace.
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _check_references(references: Sequence[str]) -> None:
    # A bare string is a Sequence[str] too; iterating it would silently score
    # against single characters, so reject it loudly instead.
    if isinstance(references, str):
        raise TypeError("references must be a sequence of strings, not a str")
    if len(references) == 0:
        raise ValueError("references must contain at least one answer")


def squad_em(prediction: str, references: Sequence[str]) -> float:
    """Exact match (1.0 or 0.0) after normalisation, maximised over references."""
    _check_references(references)
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(ref) for ref in references))


def _token_f1(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    # As the official v1.1 script: no shared token is F1 = 0, even when both sides
    # normalise to nothing ("a" vs "the"), which exact match calls equal.
    # Counter intersection: a repeated token only counts as often as it
    # appears on both sides.
    common = Counter(pred_tokens) & Counter(ref_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_f1(prediction: str, references: Sequence[str]) -> float:
    """Official SQuAD bag-of-tokens F1 in [0, 1], maximised over references."""
    _check_references(references)
    return max(_token_f1(prediction, ref) for ref in references)


# --------------------------------------------------------------------------
# Numeric answers
# --------------------------------------------------------------------------

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


@dataclass(frozen=True)
class _Read:
    value: float | None  # may be inf until classified
    percent: bool = False
    decimals: int | None = None
    significant: int | None = None


# An unsigned decimal number. Commas count as thousands separators only in
# proper groups of three, so a list such as "1, 2" or "1,2" is never read as 12.
_UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<!\d)\.\d+"
# Fractions are replaced by "\x00<index>\x00" placeholders before number
# scanning, so that a fraction is read as one value and not as two integers.
_PLACEHOLDER = r"\x00\d+\x00"
_EXPONENT = r"(?:\{\s*[-+\u2212]?\d+\s*\}|[-+\u2212]?\d+)"
_TIMES = r"\s*(?:\\times|\\cdot|\u00d7|\*)\s*"
# One number as a math model writes it: 3\frac{1}{2} (a mixed number), \frac{1}{2},
# 1.5 \times 10^{3}, 10^3, 1.5e3, 1,234.5; then an optional percent sign.
# A minus sign only counts when it cannot be a binary minus or part of a word
# ("5-3", "x-3", "v-2" keep their positive right operand).
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w.)\]}])[-\u2212])?(?:"
    r"(?P<whole>\d+)\s*(?P<mixed>" + _PLACEHOLDER + r")"
    r"|(?P<frac>" + _PLACEHOLDER + r")"
    r"|(?P<mant>" + _UNSIGNED + r")" + _TIMES + r"10\s*\^\s*(?P<sci>" + _EXPONENT + r")"
    r"|(?P<radix>" + _UNSIGNED + r")\s*\^\s*(?P<pow>" + _EXPONENT + r")"
    r"|(?P<emant>" + _UNSIGNED + r")[eE](?P<e>[-+]?\d+)(?![\w.])"
    r"|(?P<num>" + _UNSIGNED + r"))"
    r"(?P<pct>\s*\\?%|\s+percent\b)?"
)
# "a/b" as an entire answer, or right after "the answer is"; inside running text a
# slash is too ambiguous (dates, units, "km/h") to be read as division.
_SLASH_FRACTION = re.compile(r"(?P<sign>[-+\u2212]?)(?P<a>" + _UNSIGNED + r")\s*/\s*(?P<b>" + _UNSIGNED + r")")
_ANSWER_MARKER = re.compile(r"####|\b(?:final\s+)?answer\s*(?:is\b|:)", re.IGNORECASE)

_MAX_DEPTH = 8

_FRAC_COMMAND = re.compile(r"\\[dtc]?frac(?![a-zA-Z])")
_BOXED_COMMAND = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Around a boxed number: "x = 5", "5 \text{ apples}", "5 apples", "30^\circ".
_BOXED_LHS = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")
_BOXED_UNIT = re.compile(
    r"(?:\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}|\s*\^\s*\{?\\circ\}?|\s*\u00b0|(?<=[\d}%])\s+[A-Za-z][A-Za-z .]*)\s*$"
)


def _matching_brace(text: str, open_idx: int) -> int | None:
    """Index of the '}' closing the '{' at ``open_idx``, or None if unbalanced."""
    depth = 0
    for i in range(open_idx, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
    return None


def _frac_argument(text: str, i: int) -> tuple[str, int] | None:
    """Read one argument of \\frac starting at ``i``: a {group} or one char.

    The single-character form covers the ``\\frac12`` shorthand.
    """
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        return None
    if text[i] == "{":
        close = _matching_brace(text, i)
        if close is None:
            return None
        return text[i + 1 : close], close + 1
    if text[i] in "}\\":
        return None
    return text[i], i + 1


def _clean(text: str) -> str:
    """Strip formatting that never changes a number's value."""
    text = text.replace("\x00", "")  # reserved for our fraction placeholders
    text = text.replace("\\$", "").replace("$", "")
    text = text.replace("\\!", "")  # LaTeX negative thin space: 1\!000
    text = text.replace("{,}", ",")  # LaTeX thousands comma: 1{,}000
    text = text.replace("\\left", "").replace("\\right", "")
    text = re.sub(r"(?<=\d)\\,(?=\d{3}(?!\d))", "", text)  # 1\,000
    return text


def _replace_fractions(text: str, values: list[float | None], depth: int = 0) -> str:
    """Replace each \\frac{a}{b} by a placeholder; its value goes in ``values``.

    A fraction whose parts are not plain numbers (``\\frac{\\pi}{2}``) gets a
    None value, so the digits inside it are not mistaken for the answer.
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _FRAC_COMMAND.search(text, pos)
        if m is None:
            out.append(text[pos:])
            return "".join(out)
        num = _frac_argument(text, m.end())
        den = _frac_argument(text, num[1]) if num else None
        if num is None or den is None:
            # Malformed: drop the command word, keep scanning after it.
            out.append(text[pos : m.start()])
            pos = m.end()
            continue
        # Fractions nest (\\frac{\\frac{1}{2}}{3}); the depth cap keeps
        # adversarial input from exhausting the recursion limit.
        a = _read_single(num[0], depth + 1).value if depth < _MAX_DEPTH else None
        b = _read_single(den[0], depth + 1).value if depth < _MAX_DEPTH else None
        out.append(text[pos : m.start()])
        out.append(f"\x00{len(values)}\x00")
        values.append(_divide(a, b))
        pos = den[1]


def _divide(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or (math.isinf(a) and math.isinf(b)):
        return None
    return a / b


def _plain(text: str) -> float:
    # float() of a 400-digit string is inf, not an error; classified as non-finite later.
    return float(text.replace(",", ""))


def _exponent(text: str) -> int:
    return int(text.strip("{} ").replace("\u2212", "-"))


def _power(base: float, exponent: int) -> float:
    try:
        return base**exponent
    except (OverflowError, ZeroDivisionError):
        return math.inf


def _digits(text: str) -> tuple[int | None, int]:
    """Decimals and significant digits of a plain decimal as written."""
    text = text.replace(",", "")
    decimals = len(text.split(".", 1)[1]) if "." in text else 0
    return decimals, len(text.replace(".", "").lstrip("0"))


def _match_read(m: re.Match[str], values: list[float | None]) -> _Read:
    """The value of one _NUMBER match (inf when it overflows a float)."""
    g = m.group
    decimals = significant = None
    if g("mixed") is not None:
        frac = values[int(g("mixed").strip("\x00"))]
        value = None if frac is None or frac < 0 else _plain(g("whole")) + frac
    elif g("frac") is not None:
        value = values[int(g("frac").strip("\x00"))]
    elif g("mant") is not None:
        value = _plain(g("mant")) * _power(10.0, _exponent(g("sci")))
    elif g("radix") is not None:
        value = _power(_plain(g("radix")), _exponent(g("pow")))
    elif g("emant") is not None:
        value = _plain(g("emant")) * _power(10.0, int(g("e")))
    else:
        value = _plain(g("num"))
        decimals, significant = _digits(g("num"))
    if value is not None and math.isnan(value):
        value = math.inf  # 0 * inf from an overflowing exponent: not a number we can grade
    if value is not None and g("sign"):
        value = -value
    return _Read(value, g("pct") is not None, decimals, significant)


def _numbers_in(text: str) -> list[_Read]:
    """All numbers in ``text`` in order, fractions evaluated, non-numeric dropped."""
    values: list[float | None] = []
    text = _replace_fractions(_clean(text), values)
    found = (_match_read(m, values) for m in _NUMBER.finditer(text))
    return [r for r in found if r.value is not None]


def _slash_fraction(text: str, *, whole: bool = True) -> _Read | None:
    """``text`` as a plain ``a/b`` fraction: all of it, or (whole=False) its start."""
    text = _clean(text).strip()
    m = _SLASH_FRACTION.fullmatch(text.rstrip(".").strip()) if whole else _SLASH_FRACTION.match(text)
    if m is None or (not whole and re.match(r"[\d/]", text[m.end() : m.end() + 1])):
        return None
    value = _divide(_plain(m.group("a")), _plain(m.group("b")))
    if value is None:
        return None
    return _Read(-value if m.group("sign") in ("-", "\u2212") else value)


def _read_single(text: str, depth: int = 0) -> _Read:
    """``text`` read as exactly one number; value None if it is anything else."""
    text = _clean(text).strip()
    # Unwrap redundant outer braces such as "{18}".
    while text.startswith("{") and _matching_brace(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    fraction = _slash_fraction(text)
    if fraction is not None:
        return fraction
    values: list[float | None] = []
    text = _replace_fractions(text, values, depth).strip().rstrip(".").strip()
    m = _NUMBER.fullmatch(text[1:] if text.startswith("+") else text)
    return _match_read(m, values) if m else _Read(None)


def _first_number(segment: str) -> _Read | None:
    """The number that starts the line after an answer marker ("$", "x =" allowed before it)."""
    segment = segment.lstrip(" \t:*")
    line = segment.split("\n", 1)[0] if segment.strip() else ""
    line = _BOXED_LHS.sub("", _clean(re.sub(r"^\\[(\[]", "", line)).lstrip(" *"))
    fraction = _slash_fraction(line, whole=False)
    if fraction is not None:
        return fraction
    values: list[float | None] = []
    m = _NUMBER.match(_replace_fractions(line, values))
    read = _match_read(m, values) if m else None
    return read if read is not None and read.value is not None else None


def _last_number(text: str) -> _Read | None:
    fraction = _slash_fraction(text)
    if fraction is not None:
        return fraction
    numbers = _numbers_in(text)
    return numbers[-1] if numbers else None


def _last_boxed(text: str) -> str | None:
    """Content of the last non-empty \\boxed{...} whose braces balance, else None.

    An empty box is the instruction echoed back ("within \\boxed{}"), not an answer.
    """
    for m in reversed(list(_BOXED_COMMAND.finditer(text))):
        close = _matching_brace(text, m.end() - 1)
        if close is not None and text[m.end() : close].strip():
            return text[m.end() : close]
    return None


def _read_boxed(content: str) -> _Read:
    """A box's content as one number, allowing "x = 5", units and degree signs around it."""
    text = _BOXED_LHS.sub("", content)
    for _ in range(3):
        text = _BOXED_UNIT.sub("", text)
    return _read_single(text)


def _answer(read: _Read | None, source: str, text: str) -> Answer:
    if read is None or read.value is None:
        return Answer(None, source, text)
    if not math.isfinite(read.value):
        return Answer(None, source, text, read.percent, non_finite=True)
    return Answer(read.value, source, text, read.percent, read.decimals, read.significant)


def extract_answer(text: str) -> Answer:
    """Read the final answer of a model generation, and say where it was found.

    Rules, in order (the first that applies decides; ``source`` names it):

    1. ``boxed``: the content of the last non-empty ``\\boxed{...}`` (nested braces handled),
       read as one number, allowing "x = " before it and units or degrees after it. When the
       content is not a number (``\\boxed{five}``, ``\\boxed{2\\sqrt{3}}``) the answer is
       None: numbers elsewhere in the text are not used in its place.
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
        found = _first_number(segment)
        if found is not None:
            return _answer(found, "answer_is", segment.strip().split("\n", 1)[0])
    found = _last_number(text)
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
    expected = _read_single(reference)
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
    value = _read_single(answer).value
    return value if value is not None and math.isfinite(value) else None
