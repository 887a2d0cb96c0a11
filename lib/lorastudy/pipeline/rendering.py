"""The executed report notebook rendered without code cells, as a self-contained HTML page and
Markdown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..study.paths import StudyPaths
from ..util.files import atomic_write_text
from .page import html_page, markdown_page

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "report" / "templates"


def nbconvert_templates() -> list[str]:
    """nbconvert's own templates (lab and markdown, which the report's extend), wherever pip put
    them: under a prefix's share/jupyter, which Jupyter searches, or after `pip install --target
    DIR` under DIR/share/jupyter, which it does not."""
    import nbconvert

    package = Path(nbconvert.__file__).resolve().parent
    # DIR/nbconvert (a --target install); PREFIX/lib/pythonX.Y/site-packages/nbconvert (a prefix)
    installs = [package.parent, *package.parents[3:4]]
    folders = [folder / "share" / "jupyter" / "nbconvert" / "templates" for folder in installs]
    return [str(folder) for folder in folders if folder.is_dir()]


def render(paths: StudyPaths, log: Callable[[str], None] = print) -> tuple[Path, Path]:
    """The executed report notebook, without code cells, as HTML and Markdown."""
    import nbformat
    from nbconvert import HTMLExporter, MarkdownExporter

    notebook = nbformat.read(paths.notebooks / "04_report.ipynb", as_version=4)
    for cell in notebook.cells:
        # What a library wrote to stderr while the report ran (a warning from an import) is no
        # part of the report; the executed notebook keeps it.
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.get("name") == "stderr")]
    own = nbconvert_templates()
    options = dict(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        extra_template_basedirs=[str(TEMPLATES_DIR), *own],
        extra_template_paths=own,
    )
    # A template without the CDN scripts (require.js, MathJax): the page needs nothing else.
    html, _ = HTMLExporter(template_name="offline", **options).from_notebook_node(notebook)
    stem = paths.study
    markdown, resources = MarkdownExporter(template_name="offline_md", **options).from_notebook_node(
        notebook, resources={"output_files_dir": f"{stem}_files"}
    )
    paths.rendered.mkdir(parents=True, exist_ok=True)
    for name, data in resources.get("outputs", {}).items():
        target = paths.rendered / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    html_path, md_path = paths.rendered / f"{stem}.html", paths.rendered / f"{stem}.md"
    atomic_write_text(html_path, html_page(html))
    atomic_write_text(md_path, markdown_page(markdown))
    return html_path, md_path
