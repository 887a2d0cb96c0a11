"""The wheel: `python -m build` from the checkout's files (as from a fresh clone, through the
sdist) gives a wheel that holds the notebooks, the params templates and the report templates,
and a step's code identity is the same whether the notebooks and the code come from the
checkout or from the wheel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lorastudy import __version__
from lorastudy.pipeline.steps import NOTEBOOKS_DIR, plan
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ["01_data", "01_quantization", "02_train", "03_evaluate", "04_report"]
STUDIES = ["smoke", "smoke-methods", "qwen3-0.6b"]

pytestmark = pytest.mark.slow

# Each step's code and tasks, as the plan of each study computes them: printed as JSON by the
# copy of lorastudy under test (the checkout's, or the wheel's in another process).
IDENTITIES = """
import json, sys
from pathlib import Path
import lorastudy
from lorastudy.pipeline.steps import NOTEBOOKS_DIR, plan
from lorastudy.study.load import load_config
from lorastudy.study.paths import StudyPaths
out = {"package": lorastudy.__file__, "notebooks": str(NOTEBOOKS_DIR), "steps": {}}
for params in sys.argv[1:]:
    cfg = load_config(params, root="/nowhere")
    for step in plan(cfg, StudyPaths(Path("/nowhere"), cfg.study)):
        out["steps"][f"{cfg.study}/{step.id}"] = [step.code.hash, step.code.parts, step.task_code]
print(json.dumps(out))
"""


def checkout_files(target: Path) -> Path:
    """What a fresh clone holds (tracked files, and new ones not yet committed): no build/,
    egg-info or runs/ of this checkout in the build."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    clone = checkout_files(tmp_path_factory.mktemp("clone"))
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(clone)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    wheels = list(dist.glob("*.whl"))
    assert [w.name for w in wheels] == [f"lorastudy-{__version__}-py3-none-any.whl"]
    print(f"\nwheel {wheels[0].name}: {wheels[0].stat().st_size / 1024:.0f} KB")
    return wheels[0]


@pytest.fixture(scope="module")
def unpacked(wheel, tmp_path_factory) -> Path:
    """The wheel's files as an install puts them in site-packages."""
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)
    return site


def test_the_wheel_holds_the_notebooks_and_templates_and_nothing_of_the_checkout_else(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    notebooks = sorted(n for n in names if n.startswith("lorastudy/notebooks/"))
    assert notebooks == sorted(f"lorastudy/notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert {f"lorastudy/notebooks/{name}.ipynb" for name in NOTEBOOKS} <= set(notebooks)
    assert sorted(n for n in names if n.startswith("lorastudy/params/")) == sorted(
        f"lorastudy/params/{p.name}" for p in (ROOT / "params").glob("*.yaml")
    )
    for template in ("offline/index.html.j2", "offline/conf.json", "offline_md/index.md.j2", "offline_md/conf.json"):
        assert f"lorastudy/report/templates/{template}" in names
    info = f"lorastudy-{__version__}.dist-info"
    assert f"{info}/licenses/LICENSE" in names
    assert not [n for n in names if n.split("/")[0] not in ("lorastudy", info)], "files outside the package"
    assert not [n for n in names if "__pycache__" in n or n.startswith("lorastudy/tests")]
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert f"Version: {__version__}" in metadata and "License-Expression: Apache-2.0" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode()
    assert "lorastudy = lorastudy.cli:main" in entry_points


def test_the_wheels_notebooks_and_params_are_the_checkouts(unpacked):
    for folder in ("notebooks", "params"):
        shipped = {p.name: p.read_bytes() for p in (unpacked / "lorastudy" / folder).iterdir()}
        source = {p.name: p.read_bytes() for p in (ROOT / folder).iterdir() if p.suffix in (".ipynb", ".yaml")}
        assert shipped == source


def identities_from(python_path: Path, cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(python_path)}
    params = [str(ROOT / "params" / f"{s}.yaml") for s in STUDIES]
    result = subprocess.run(
        [sys.executable, "-c", IDENTITIES, *params], capture_output=True, text=True, cwd=cwd, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_a_steps_code_identity_is_the_same_from_the_wheel_as_from_the_checkout(unpacked, tmp_path):
    from_wheel = identities_from(unpacked, tmp_path)
    # The wheel's own code and notebooks, not the checkout's.
    assert Path(from_wheel["package"]).is_relative_to(unpacked)
    assert Path(from_wheel["notebooks"]) == unpacked / "lorastudy" / "notebooks"
    assert NOTEBOOKS_DIR == ROOT / "notebooks"
    mine = {}
    for study in STUDIES:
        cfg = load_config(ROOT / "params" / f"{study}.yaml", root="/nowhere")
        for step in plan(cfg, StudyPaths(Path("/nowhere"), cfg.study)):
            mine[f"{cfg.study}/{step.id}"] = [step.code.hash, step.code.parts, step.task_code]
    assert from_wheel["steps"] == mine
    assert len(mine) > 20 and all(parts for _, parts, _ in mine.values())


def test_the_wheels_command_line_says_its_version_and_starts_a_study(unpacked, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(unpacked)}
    run = [sys.executable, "-m", "lorastudy"]
    version = subprocess.run([*run, "--version"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert version.returncode == 0 and version.stdout.strip() == f"lorastudy {__version__}"
    init = subprocess.run([*run, "init", "s", "--notebooks"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert init.returncode == 0, init.stderr
    assert (tmp_path / "s" / "params" / "smoke.yaml").read_text().endswith((ROOT / "params" / "smoke.yaml").read_text())
    assert len(list((tmp_path / "s" / "notebooks").glob("*.ipynb"))) == len(NOTEBOOKS)
