"""The files a project people cite and extend is expected to have, and that they agree with the
package: its version in one place, its license, its changelog, its contributing guide."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from lorastudy import __version__

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as pip vendors it
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_lorastudy_version_prints_the_packages_version():
    result = subprocess.run([sys.executable, "-m", "lorastudy", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"lorastudy {__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_the_version_has_one_source_that_the_citation_and_changelog_follow():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "lorastudy.__version__"}
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["version"] == __version__
    top = re.search(r"^## (\S+) \((\d{4}-\d{2}-\d{2})\)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert top and top.group(1) == __version__ and top.group(2) == str(citation["date-released"])


def test_the_citation_file_has_what_cff_1_2_requires():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert {"message", "title", "authors"} <= set(citation) and citation["authors"]
    assert all("name" in a or "family-names" in a for a in citation["authors"])
    assert citation["license"] == "Apache-2.0"


def test_the_license_is_apache_2_and_the_package_declares_it():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]


def test_the_changelog_records_the_identity_changes_and_the_gpu_fixes():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "2026-12-01: the package moved into subpackages" in text and "Every step's code identity changed" in text
    for fix in ("FSDP", "one GPU", "train.precision: auto", "emptied allocator cache"):
        assert fix in text, fix


def test_contributing_names_the_loop_and_points_at_the_map():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    for needed in ("make test-fast", "make lint", "-m slow", 'docs/design.md`, "Where a change goes"'):
        assert needed in text, needed
    assert "### Where a change goes" in (ROOT / "docs" / "design.md").read_text()
    # Every make target it names exists.
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert set(re.findall(r"make ([a-z-]+)", text)) <= targets
