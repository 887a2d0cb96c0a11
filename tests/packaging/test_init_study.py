"""`lorastudy init DIR`: a params file from a named template and, with --notebooks, notebook
copies that run against DIR; bad input is refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lorastudy.scaffold import init_study
from lorastudy.study.load import load_config
from lorastudy.study.schema import ConfigError
from lorastudy.util.package_data import notebooks_dir, templates

ROOT = Path(__file__).resolve().parents[2]


def lorastudy(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lorastudy", *args], capture_output=True, text=True, cwd=cwd)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def parameters(path: Path) -> str:
    return next("".join(c["source"]) for c in cells(path) if "parameters" in c["metadata"].get("tags", []))


def test_the_templates_are_the_checkouts_params_files():
    assert {"smoke", "smollm2-135m", "qwen3-0.6b"} <= set(templates())
    assert {name: path.read_text() for name, path in templates().items()} == {
        p.stem: p.read_text() for p in (ROOT / "params").glob("*.yaml")
    }


@pytest.mark.parametrize("template", ["smoke", "smollm2-135m", "qwen3-0.6b"])
def test_init_writes_the_template_as_a_params_file_that_loads(tmp_path, template):
    result = lorastudy("init", str(tmp_path / "study"), "--template", template)
    assert result.returncode == 0, result.stderr
    params = tmp_path / "study" / "params" / f"{template}.yaml"
    assert sorted(p.relative_to(tmp_path / "study") for p in (tmp_path / "study").rglob("*") if p.is_file()) == [
        Path("params") / f"{template}.yaml"
    ]
    text = params.read_text()
    # The template as it is, after a header that says how to run it from this folder.
    assert text.endswith(templates()[template].read_text()) and f"lorastudy run params/{template}.yaml" in text
    assert load_config(params, root=tmp_path / "study").resolved() == load_config(templates()[template]).resolved()
    assert f"cd {tmp_path / 'study'} && lorastudy check params/{template}.yaml" in result.stdout


def test_init_with_notebooks_points_each_copy_at_the_study(tmp_path):
    written = init_study(tmp_path / "s", "smollm2-135m", notebooks=True)
    copies = sorted((tmp_path / "s" / "notebooks").glob("*.ipynb"))
    assert [p.name for p in copies] == sorted(p.name for p in notebooks_dir().glob("*.ipynb")) and len(copies) == 5
    assert written == [tmp_path / "s" / "params" / "smollm2-135m.yaml", *copies]
    for copy in copies:
        source = notebooks_dir() / copy.name
        text = parameters(copy)
        assert 'params_file = "../params/smollm2-135m.yaml"' in text and 'root = ".."' in text
        assert text.replace("smollm2-135m.yaml", "smoke.yaml") == parameters(source)
        # Every other cell as the package has it.
        others = [c for c in cells(copy) if "parameters" not in c["metadata"].get("tags", [])]
        assert others == [c for c in cells(source) if "parameters" not in c["metadata"].get("tags", [])]


def test_init_refuses_a_folder_that_is_not_empty_and_writes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = lorastudy("init", str(tmp_path), "--notebooks")
    assert result.returncode == 2
    assert f"error: init: {tmp_path} is not empty" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        init_study(tmp_path / "file", "smoke", notebooks=False)


def test_init_into_an_empty_folder_is_fine(tmp_path):
    assert init_study(tmp_path, "smoke", notebooks=False) == [tmp_path / "params" / "smoke.yaml"]


def test_an_unknown_template_is_refused_with_the_known_ones(tmp_path):
    result = lorastudy("init", str(tmp_path / "s"), "--template", "qwen3-7b")
    assert result.returncode == 2 and "no template 'qwen3-7b'" in result.stderr and "smoke" in result.stderr
    assert not (tmp_path / "s").exists()
    with pytest.raises(ConfigError, match=r"--template: no template 'qwen3-7b' \(known: .*smoke"):
        init_study(tmp_path / "s", "qwen3-7b", notebooks=False)
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_a_notebook_copy_run_as_jupyterlab_runs_it_writes_the_studys_folder(tmp_path, study_folder):
    """01_data executed from its folder with the parameters it was written with, as JupyterLab
    runs it: its outputs land in the study's runs/, not the package's or the checkout's."""
    import papermill as pm

    from lorastudy.pipeline.execution import use_this_interpreter

    folder = tmp_path / "study"
    init_study(folder, "smoke", notebooks=True)
    study_folder(folder)  # the tiny model linked in rather than rebuilt
    use_this_interpreter(tmp_path / "jupyter")
    notebook = folder / "notebooks" / "01_data.ipynb"
    pm.execute_notebook(
        str(notebook),
        str(tmp_path / "executed.ipynb"),
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    summary = json.loads((folder / "runs" / "smoke" / "data" / "summary.json").read_text())
    assert summary["datasets"] and (folder / "runs" / "smoke" / "data" / "train.jsonl").is_file()
    printed = "".join(
        "".join(o.get("text", "")) for c in cells(tmp_path / "executed.ipynb") for o in c.get("outputs", [])
    )
    assert f"base model: {folder / 'runs' / '_models'}" in printed
