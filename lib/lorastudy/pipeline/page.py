"""The rendered report as a reader meets it: a table of contents at the top of the HTML page,
verdict cells coloured by outcome (their words stay: colour is never the only signal), and
Markdown without runs of blank lines."""

from __future__ import annotations

import html
import re

# nbconvert writes each heading with an id and a pilcrow anchor link.
HEADING = re.compile(r'<h([23]) id="([^"]+)">(.*?)<a class="anchor-link" href="#[^"]*">¶</a></h\1>', re.S)
TAG = re.compile(r"<[^>]+>")
# A verdict cell starts with its outcome; the class colours it (see STYLE).
OUTCOMES = {
    "better": "better",
    "worse": "worse",
    "equivalent": "equivalent",
    "inconclusive": "open",
    "provisional": "open",
    "no detectable difference": "open",
    "cannot separate": "open",
}
CELL = re.compile(r'<td style="text-align:left">((?:<strong>)?)(' + "|".join(map(re.escape, OUTCOMES)) + r")")
STYLE = """<style>
nav.lorastudy-contents { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.4em 1.2em; margin: 1em 0;
  max-width: 60em; font-size: 0.95em; }
nav.lorastudy-contents ul { margin: 0.2em 0; padding-left: 1.2em; }
nav.lorastudy-contents li.sub { margin-left: 1.2em; list-style: circle; }
td.verdict-better { background: #dafbe1; }
td.verdict-worse { background: #ffebe9; }
td.verdict-equivalent { background: #ddf4ff; }
td.verdict-open { background: #f6f8fa; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
</style>"""


def contents(page: str) -> str:
    """The page's sections (h2) and their subsections (h3), linked, as a nav block."""
    items = []
    for level, anchor, title in HEADING.findall(page):
        text = html.escape(html.unescape(TAG.sub("", title)).strip())
        cls = ' class="sub"' if level == "3" else ""
        items.append(f'<li{cls}><a href="#{anchor}">{text}</a></li>')
    if not items:
        return ""
    return '<nav class="lorastudy-contents"><strong>Contents</strong><ul>' + "".join(items) + "</ul></nav>"


def html_page(page: str) -> str:
    """The exported page with its contents after the title (the first h1), verdict cells
    classed by outcome, and the style both need."""
    page = CELL.sub(
        lambda m: f'<td style="text-align:left" class="verdict-{OUTCOMES[m.group(2)]}">{m.group(1)}{m.group(2)}', page
    )
    toc = contents(page)
    title_end = page.find("</h1>")
    if toc and title_end >= 0:
        page = page[: title_end + 5] + toc + page[title_end + 5 :]
    return page.replace("</head>", STYLE + "\n</head>", 1)


def markdown_page(text: str) -> str:
    """The exported Markdown with at most one blank line between blocks."""
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"
