"""Each notebook as a user opens it in JupyterLab: with its default parameters, run top to
bottom from the notebooks folder, against a finished smoke study for the report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from lorastudy.pipeline.execution import use_this_interpreter

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_data", "01_quantization", "02_train", "03_evaluate", "04_report"]
HEADING = re.compile(r"^(#{1,3}) (.+)$", re.M)


def headings(markdown: str) -> list[str]:
    return [f"{hashes} {text.strip()}" for hashes, text in HEADING.findall(markdown)]


@pytest.mark.slow
def test_every_notebook_runs_top_to_bottom_with_its_defaults(tmp_path, study_folder, run_study):
    import papermill as pm

    root = study_folder(tmp_path / "checkout")
    shutil.copytree(ROOT / "params", root / "params")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    done = run_study(ROOT / "params" / "smoke.yaml", root)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rendered = (root / "rendered" / "smoke.md").read_text()
    use_this_interpreter(tmp_path / "kernels")
    for name in NOTEBOOKS:
        notebook = root / "notebooks" / f"{name}.ipynb"
        out = tmp_path / f"{name}.out.ipynb"
        # No parameters injected: the defaults in the notebook's parameters cell, as JupyterLab runs it.
        pm.execute_notebook(
            str(notebook), str(out), kernel_name="python3", cwd=str(notebook.parent), progress_bar=False
        )
        executed = nbformat.read(out, as_version=4)
        errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{name}: {errors[:1]}"
    shown = "\n".join(
        o["data"]["text/markdown"]
        for c in nbformat.read(tmp_path / "04_report.out.ipynb", as_version=4).cells
        for o in c.get("outputs", [])
        if "text/markdown" in o.get("data", {})
    )
    # The same sections, in the same order, as the rendered report.
    assert headings(shown) == headings(rendered) and len(headings(rendered)) >= 8
