from __future__ import annotations

import nbformat
import pytest
from nbconvert import HTMLExporter

from lorastudy.report.format import number
from lorastudy.report.markdown import code, escape, table

HOSTILE = [
    '<script>alert("x")</script>',
    "<img src=x onerror=alert(1)>",
    "[click me](javascript:alert(1))",
    "![pixel](http://example.com/p.png)",
    "**bold** _em_ `code` | pipe",
    "</td></tr><tr><td>",
    "&lt;script&gt; already encoded",
]


def render_markdown_output(markdown: str) -> str:
    """The HTML nbconvert makes of a Markdown display output, as in the report."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": markdown})]
    nb.cells = [cell]
    body, _ = HTMLExporter(exclude_input=True).from_notebook_node(nb)
    return body


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_text_not_markup(text):
    html = render_markdown_output(table(["prompt"], [[escape(text)]]))
    for live in (
        "<script>alert",
        "<img src=x",
        'href="javascript:',
        "<strong>bold",
        "<em>em",
        '<img alt="pixel"',
        "</td></tr><tr><td>",
    ):
        assert live not in html
    escaped = escape(text)
    assert "<" not in escaped and ">" not in escaped


def test_escaped_markup_stays_readable():
    html = render_markdown_output(escape("<b>5</b> apples"))
    assert "&lt;b&gt;5&lt;/b&gt; apples" in html


def test_newlines_and_length_limits_keep_a_table_row_intact():
    cell = escape("line one\nline two | three", limit=15)
    assert "\n" not in cell and cell.endswith("\u2026")
    assert table(["a", "b"], [["1", cell]]).count("\n") == 2


def test_a_missing_number_says_so():
    assert number(None) == "n/a" and number(float("nan"), na="not measured") == "not measured"
    assert number(0.0) == "0.000"


@pytest.mark.parametrize("text", ["smollm2-135m", "lorastudy run params/smollm2-135m.yaml -p a=[1,2]", "<b>*x*</b>"])
def test_code_shows_the_text_itself_without_escape_backslashes(text):
    html = render_markdown_output(f"# study {code(text)}")
    shown = html.split("<code>", 1)[1].split("</code>", 1)[0]
    assert shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == text
