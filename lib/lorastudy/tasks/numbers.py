"""Reading the numbers a model writes: plain, with thousands separators, signed, in scientific
notation, as LaTeX fractions (\\frac, \\dfrac, mixed numbers) or a/b, with the digits each was
written to (for rounding), inside or outside \\boxed{}."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Read:
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


_MAX_DEPTH = 8


_FRAC_COMMAND = re.compile(r"\\[dtc]?frac(?![a-zA-Z])")


# Around a boxed number: "x = 5", "5 \text{ apples}", "5 apples", "30^\circ".
LEFT_HAND_SIDE = re.compile(r"^\s*[A-Za-z](?:_\{?\w+\}?)?\s*=\s*")


def matching_brace(text: str, open_idx: int) -> int | None:
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
        close = matching_brace(text, i)
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
        a = read_single(num[0], depth + 1).value if depth < _MAX_DEPTH else None
        b = read_single(den[0], depth + 1).value if depth < _MAX_DEPTH else None
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


def _match_read(m: re.Match[str], values: list[float | None]) -> Read:
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
    return Read(value, g("pct") is not None, decimals, significant)


def _numbers_in(text: str) -> list[Read]:
    """All numbers in ``text`` in order, fractions evaluated, non-numeric dropped."""
    values: list[float | None] = []
    text = _replace_fractions(_clean(text), values)
    found = (_match_read(m, values) for m in _NUMBER.finditer(text))
    return [r for r in found if r.value is not None]


def _slash_fraction(text: str, *, whole: bool = True) -> Read | None:
    """``text`` as a plain ``a/b`` fraction: all of it, or (whole=False) its start."""
    text = _clean(text).strip()
    m = _SLASH_FRACTION.fullmatch(text.rstrip(".").strip()) if whole else _SLASH_FRACTION.match(text)
    if m is None or (not whole and re.match(r"[\d/]", text[m.end() : m.end() + 1])):
        return None
    value = _divide(_plain(m.group("a")), _plain(m.group("b")))
    if value is None:
        return None
    return Read(-value if m.group("sign") in ("-", "\u2212") else value)


def read_single(text: str, depth: int = 0) -> Read:
    """``text`` read as exactly one number; value None if it is anything else."""
    text = _clean(text).strip()
    # Unwrap redundant outer braces such as "{18}".
    while text.startswith("{") and matching_brace(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    fraction = _slash_fraction(text)
    if fraction is not None:
        return fraction
    values: list[float | None] = []
    text = _replace_fractions(text, values, depth).strip().rstrip(".").strip()
    m = _NUMBER.fullmatch(text[1:] if text.startswith("+") else text)
    return _match_read(m, values) if m else Read(None)


def first_number(segment: str) -> Read | None:
    """The number that starts the line after an answer marker ("$", "x =" allowed before it)."""
    segment = segment.lstrip(" \t:*")
    line = segment.split("\n", 1)[0] if segment.strip() else ""
    line = LEFT_HAND_SIDE.sub("", _clean(re.sub(r"^\\[(\[]", "", line)).lstrip(" *"))
    fraction = _slash_fraction(line, whole=False)
    if fraction is not None:
        return fraction
    values: list[float | None] = []
    m = _NUMBER.match(_replace_fractions(line, values))
    read = _match_read(m, values) if m else None
    return read if read is not None and read.value is not None else None


def last_number(text: str) -> Read | None:
    fraction = _slash_fraction(text)
    if fraction is not None:
        return fraction
    numbers = _numbers_in(text)
    return numbers[-1] if numbers else None
