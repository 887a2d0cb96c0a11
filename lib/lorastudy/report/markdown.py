"""Markdown that renders as written: escaped text, inline code, tables."""

from __future__ import annotations

import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$])")


def escape(text: object, limit: int | None = None) -> str:
    """Untrusted text as inert Markdown: HTML special characters become entities and
    Markdown punctuation is backslash-escaped; newlines become a visible return sign."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "").replace("\n", " \u21b5 ")


def code(text: object) -> str:
    """Untrusted text in a code font. Not a Markdown code span: backslash escapes are literal
    there, so `escape`'s output would show its backslashes (smollm2\\-135m); inside an HTML
    <code> element they are read as escapes, and the text renders as it is."""
    return f"<code>{escape(text)}</code>"


def table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    """A Markdown pipe table from already formatted (and, if untrusted, escaped) cells."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
