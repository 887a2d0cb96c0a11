"""Where the package finds its notebooks and params: in itself once installed, in the checkout
around it otherwise; the package as a wheel lays it out, for workers without a checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lorastudy.pipeline.code_identity import code_identity
from lorastudy.pipeline.steps import NOTEBOOKS_DIR
from lorastudy.report.reproducibility import git_commit
from lorastudy.util.package_data import (
    PACKAGE_DIR,
    PackageDataMissing,
    checkout,
    data_dir,
    installable_copy,
    notebooks_dir,
    templates,
)

ROOT = Path(__file__).resolve().parents[2]


def test_from_the_checkout_the_package_reads_the_checkouts_folders():
    assert checkout() == ROOT and NOTEBOOKS_DIR == notebooks_dir() == ROOT / "notebooks"
    assert data_dir("params") == ROOT / "params" and templates()["smoke"] == ROOT / "params" / "smoke.yaml"


def installed(site: Path) -> Path:
    """The package laid out as a wheel installs it (installable_copy from the checkout)."""
    site.mkdir()
    package = installable_copy(site)
    assert package == site / "lorastudy"
    return package


def test_an_installed_package_reads_its_own_folders_and_has_no_checkout(tmp_path):
    package = installed(tmp_path / "site")
    assert checkout(package) is None
    assert notebooks_dir(package) == package / "notebooks" and templates(package)["smoke"].parent == package / "params"
    # Already laid out as installed: shipped as it is, not copied again.
    assert installable_copy(tmp_path / "elsewhere", package) == package
    assert not (tmp_path / "elsewhere").exists()


def test_the_installed_layout_holds_the_checkouts_files_and_no_bytecode(tmp_path):
    package = installed(tmp_path / "site")
    for folder in ("notebooks", "params"):
        assert {p.name: p.read_bytes() for p in (package / folder).iterdir()} == {
            p.name: p.read_bytes() for p in (ROOT / folder).iterdir() if not p.name.startswith(".")
        }
    sources = sorted(p.relative_to(PACKAGE_DIR) for p in PACKAGE_DIR.rglob("*.py"))
    assert sorted(p.relative_to(package) for p in package.rglob("*.py")) == sources
    assert not list(package.rglob("__pycache__"))


def test_code_identity_is_the_same_in_the_installed_layout(tmp_path):
    package = installed(tmp_path / "site")
    for notebook in sorted(NOTEBOOKS_DIR.glob("*.ipynb")):
        here = code_identity(notebook)
        there = code_identity(package / "notebooks" / notebook.name, package)
        assert there == here and len(here.parts) > 5


def test_a_package_without_its_notebooks_says_how_to_fix_it(tmp_path):
    package = tmp_path / "site" / "lorastudy"
    shutil.copytree(PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.raises(PackageDataMissing, match="notebooks/ is neither in the package .* reinstall"):
        notebooks_dir(package)


def test_the_reports_commit_names_an_installed_package_as_such(tmp_path):
    assert git_commit(None).startswith("none: lorastudy ") and "installed as a package" in git_commit(None)
    assert git_commit(tmp_path) == "not a git checkout"
    assert len(git_commit(ROOT).split()[0]) == 40
