"""SQuAD-style extractive QA scores: :func:`normalize_answer`, :func:`squad_em` and
:func:`squad_f1` reproduce the official SQuAD v1.1 evaluation script exactly, so our numbers
are comparable with published ones. That includes its edge case: F1 is 0 when prediction and
answer share no token, even when both normalise to nothing ("a" against "the"), while exact
match calls that pair equal (the v2.0 script differs; v1.1 is the dataset evaluated here).

Only the standard library is used, so saved generations can be re-scored anywhere.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

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
