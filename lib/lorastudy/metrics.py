"""Per-item scoring functions for the LoRA vs QLoRA study.

Two families of metrics live here:

* SQuAD-style extractive QA: :func:`normalize_answer`, :func:`squad_em` and
  :func:`squad_f1` reproduce the official SQuAD v1.1 evaluation script, so our
  numbers are comparable with published ones.
* Numeric math answers (GSM8K / MATH / OpenMathInstruct-2):
  :func:`extract_number` pulls the final answer out of a free-form generation,
  :func:`parse_expected_answer` parses a dataset's reference answer (strictly,
  so it can be used to keep only numerically-gradable problems), and
  :func:`numbers_match` compares the two with a tolerance.

Only the standard library is used so that scoring can run anywhere, including
in a bare CPU environment used to re-score saved generations.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

__all__ = [
    "normalize_answer",
    "squad_em",
    "squad_f1",
    "extract_number",
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
    # Two answers that normalise to nothing (e.g. "the" vs "a") are identical,
    # and EM already calls them a match; F1 agrees rather than dividing by 0.
    if not pred_tokens and not ref_tokens:
        return 1.0
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

# An unsigned decimal number. Commas count as thousands separators only in
# proper groups of three, so a list such as "1, 2" or "1,2" is never read as 12.
_UNSIGNED = r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<!\d)\.\d+"

# Fractions are replaced by "\x00<index>\x00" placeholders before number
# scanning, so that a fraction is read as one value and not as two integers.
# A minus sign only counts when it cannot be a binary minus or part of a word
# ("5-3", "x-3", "v-2" keep their positive right operand).
_NUMBER_TOKEN = re.compile(
    r"(?P<sign>(?<![\w.)\]}])[-\u2212])?"
    r"(?:\x00(?P<ph>\d+)\x00|(?P<num>" + _UNSIGNED + r"))"
)

# The whole string is a single (optionally signed) number or placeholder.
_SINGLE_NUMBER = re.compile(r"[-+\u2212]?(?:\x00\d+\x00|" + _UNSIGNED + r")")

# "a/b" as an entire answer; inside running text a slash is too ambiguous
# (dates, units, "km/h") to be read as division.
_SLASH_FRACTION = re.compile(r"(?P<sign>[-+\u2212]?)(?P<a>" + _UNSIGNED + r")\s*/\s*(?P<b>" + _UNSIGNED + r")")

_MAX_DEPTH = 8

_FRAC_COMMAND = re.compile(r"\\[dt]?frac(?![a-zA-Z])")
_BOXED_COMMAND = re.compile(r"\\(?:boxed|fbox)\s*\{")


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
        a = _parse_single(num[0], depth + 1) if depth < _MAX_DEPTH else None
        b = _parse_single(den[0], depth + 1) if depth < _MAX_DEPTH else None
        value = a / b if a is not None and b is not None and b != 0 else None
        out.append(text[pos : m.start()])
        out.append(f"\x00{len(values)}\x00")
        values.append(value)
        pos = den[1]


def _token_value(m: re.Match[str], values: list[float | None]) -> float | None:
    if m.group("ph") is not None:
        value = values[int(m.group("ph"))]
    else:
        value = float(m.group("num").replace(",", ""))
    if value is not None and m.group("sign"):
        value = -value
    return value


def _numbers_in(text: str) -> list[float]:
    """All numbers in ``text`` in order, fractions evaluated, non-numeric dropped."""
    values: list[float | None] = []
    text = _replace_fractions(_clean(text), values)
    found = (_token_value(m, values) for m in _NUMBER_TOKEN.finditer(text))
    return [v for v in found if v is not None]


def _slash_fraction(text: str) -> float | None:
    """Value of ``text`` if the whole of it is a plain ``a/b`` fraction."""
    m = _SLASH_FRACTION.fullmatch(_clean(text).strip().rstrip(".").strip())
    if m is None:
        return None
    a = float(m.group("a").replace(",", ""))
    b = float(m.group("b").replace(",", ""))
    if b == 0:
        return None
    return -a / b if m.group("sign") in ("-", "\u2212") else a / b


def _parse_single(text: str, depth: int = 0) -> float | None:
    """Value of ``text`` if it is exactly one number, else None."""
    text = _clean(text).strip()
    # Percent signs are units, not part of the value: "50\%" means 50.
    text = re.sub(r"\\?%$", "", text).strip()
    # Unwrap redundant outer braces such as "{18}".
    while text.startswith("{") and _matching_brace(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    fraction = _slash_fraction(text)
    if fraction is not None:
        return fraction
    values: list[float | None] = []
    text = _replace_fractions(text, values, depth).strip()
    if _SINGLE_NUMBER.fullmatch(text) is None:
        return None
    negative = text[0] in "-\u2212"
    text = text.lstrip("+-\u2212")
    if text.startswith("\x00"):
        value = values[int(text.strip("\x00"))]
    else:
        value = float(text.replace(",", ""))
    if value is None:
        return None
    return -value if negative else value


def _number_from_segment(segment: str, *, last: bool) -> float | None:
    """The answer in one segment: whole-segment a/b, else first/last number."""
    fraction = _slash_fraction(segment)
    if fraction is not None:
        return fraction
    numbers = _numbers_in(segment)
    if not numbers:
        return None
    return numbers[-1] if last else numbers[0]


def _last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} whose braces balance, else None."""
    for m in reversed(list(_BOXED_COMMAND.finditer(text))):
        close = _matching_brace(text, m.end() - 1)
        if close is not None:
            return text[m.end() : close]
    return None


def extract_number(text: str) -> float | None:
    """Extract the final numeric answer from a model generation.

    Rules, first that yields a number wins:

    1. the last ``\\boxed{...}`` (nested braces handled): the content as a
       whole ``a/b`` fraction, else the last number in it;
    2. the first number after the last ``####`` (GSM8K convention);
    3. the whole text as an ``a/b`` fraction, else the last number in it.

    Thousands separators (``1,234``, ``1{,}234``, ``1\\!234``), ``$`` and ``%``
    are ignored; ``\\frac``/``\\dfrac``/``\\tfrac`` are evaluated. Returns None
    when no number is found. Never raises on string input.
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        value = _number_from_segment(boxed, last=True)
        if value is not None:
            return value
    if "####" in text:
        value = _number_from_segment(text.rsplit("####", 1)[1], last=False)
        if value is not None:
            return value
    return _number_from_segment(text, last=True)


def numbers_match(predicted: float | None, expected: float, rel_tol: float = 1e-6) -> bool:
    """Whether ``predicted`` equals ``expected`` up to ``rel_tol``.

    A tiny absolute tolerance lets 0 match 0 (and -0.0 or 1e-12 noise), which a
    purely relative test never does. None (no answer extracted) never matches.
    """
    if predicted is None or expected is None:
        return False
    return math.isclose(predicted, expected, rel_tol=rel_tol, abs_tol=1e-9)


def parse_expected_answer(answer: str) -> float | None:
    """Parse a dataset's reference answer, or None if it is not one number.

    Deliberately strict, because it decides which problems are kept: "18",
    "-2.5", "1,000", "\\frac{3}{4}", "3/4", "50\\%" and "$5" parse; anything
    with other text, letters, several numbers or brackets ("x^2+1", "(1,2)",
    "1, 2", "\\frac{\\pi}{2}") gives None.
    """
    return _parse_single(answer)
