"""Rendering the report notebook to HTML and Markdown with nbconvert, wherever it is installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbconvert
import nbformat

ROOT = Path(__file__).resolve().parents[2]

RENDER = """
import sys
from pathlib import Path
import nbconvert, nbformat
from lorastudy.study.paths import StudyPaths
from lorastudy.pipeline.rendering import render
assert nbconvert.__file__.startswith(sys.argv[2]), nbconvert.__file__  # the --target copy, not the venv's
paths = StudyPaths(Path(sys.argv[1]), "t")
html, md = render(paths)
print(html.read_text().count("A finding"), md.read_text().strip())
"""


def test_the_report_renders_after_an_install_into_a_target_folder(tmp_path):
    """`pip install --target DIR` puts nbconvert's own templates (lab, markdown, which the report's
    extend) in DIR/share/jupyter, a folder Jupyter does not search: rendering must find them.
    Reproduced with the layout such an install makes, imported by an interpreter whose prefix has
    no templates (a fresh venv, as the GPU machine's own Python has none)."""
    target = tmp_path / "target"
    package = Path(nbconvert.__file__).parent
    shutil.copytree(package, target / "nbconvert")
    shutil.copytree(Path(sys.prefix) / "share" / "jupyter" / "nbconvert", target / "share" / "jupyter" / "nbconvert")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    notebooks = tmp_path / "runs" / "t" / "notebooks"
    notebooks.mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A finding")])
    nbformat.write(notebook, notebooks / "04_report.ipynb")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "JUPYTER_DATA_DIR": str(tmp_path / "no-user-data"),
        # the target first, then what nbconvert needs besides itself, then lorastudy
        "PYTHONPATH": ":".join([str(target), sysconfig.get_paths()["purelib"], str(ROOT / "lib")]),
    }
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", RENDER, str(tmp_path), str(target)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split(maxsplit=1) == ["1", "# A finding\n"]


PAGE = """<html><head><title>t</title></head><body>
<h1 id="Study">Study<a class="anchor-link" href="#Study">¶</a></h1>
<h2 id="Executive-summary">Executive summary<a class="anchor-link" href="#Executive-summary">¶</a></h2>
<table><tr><td style="text-align:left">QLoRA vs LoRA</td><td style="text-align:left"><strong>worse</strong>: −0.05</td>
<td style="text-align:left">equivalent within ±0.02: +0.001</td></tr></table>
<h3 id="ARC-&amp;-co">ARC &amp; <code>co</code><a class="anchor-link" href="#ARC-&amp;-co">¶</a></h3>
</body></html>"""


def test_the_page_opens_with_its_contents_and_colours_verdicts_beside_their_words():
    from lorastudy.pipeline.page import html_page, markdown_page

    page = html_page(PAGE)
    nav = page[page.index("</h1>") : page.index("<h2")]
    assert '<a href="#Executive-summary">Executive summary</a>' in nav
    assert '<li class="sub"><a href="#ARC-&amp;-co">ARC &amp; co</a></li>' in nav
    assert '<td style="text-align:left" class="verdict-worse"><strong>worse</strong>' in page
    assert 'class="verdict-equivalent">equivalent within' in page
    assert 'class="verdict-' not in page.split("QLoRA vs LoRA")[0]  # a method's name is not a verdict
    assert page.index("<style>") < page.index("</head>")
    assert markdown_page("# a\n\n\n\nb\n\n\n") == "# a\n\nb\n"


def test_what_a_library_writes_to_stderr_is_left_out_of_the_report(tmp_path):
    """A warning an import prints (tqdm's, when lm-eval loads in the report's kernel) is no part of
    the report: the executed notebook keeps it, the rendered pages do not."""
    from lorastudy.pipeline.rendering import render
    from lorastudy.study.paths import StudyPaths

    notebooks = tmp_path / "runs" / "t" / "notebooks"
    notebooks.mkdir(parents=True)
    cell = nbformat.v4.new_code_cell("setup()")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text="TqdmWarning: IProgress not found\n"),
        nbformat.v4.new_output("display_data", data={"text/markdown": "# A finding"}),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), notebooks / "04_report.ipynb")
    html, md = render(StudyPaths(tmp_path, "t"), log=lambda _: None)
    for page in (html.read_text(), md.read_text()):
        assert "A finding" in page and "TqdmWarning" not in page
    kept = nbformat.read(notebooks / "04_report.ipynb", as_version=4)
    assert kept.cells[0].outputs[0].name == "stderr"
