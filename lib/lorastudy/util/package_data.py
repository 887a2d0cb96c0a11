"""Where the package's data is: the notebooks a study's steps run, and the params files that
`lorastudy init` starts a study from.

There is one source of each, the checkout's `notebooks/` and `params/`. An installed package (a
wheel, `pip install .`) holds them inside itself as `lorastudy/notebooks` and `lorastudy/params`
(setup.py maps the checkout's folders there when it builds); the package imported from a checkout
(`PYTHONPATH=lib`, or an editable install) reads the checkout's folders themselves. Either way the
files are the same, so a step's code identity is too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]


# The folders of the checkout that install inside the package (setup.py's DATA_PACKAGES).
DATA_FOLDERS = ("notebooks", "params")


class PackageDataMissing(RuntimeError):
    """The package was installed without its notebooks or params (a broken install)."""


def checkout(package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The checkout the package is imported from (it is its lib/lorastudy), or None for an
    installed package, whose folder holds its data itself."""
    if (package_dir / DATA_FOLDERS[0]).is_dir():
        return None
    candidate = package_dir.parents[1]
    if package_dir.parent.name == "lib" and (candidate / "pyproject.toml").is_file():
        return candidate
    return None


def data_dir(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """`notebooks` or `params`: inside an installed package, else the checkout's folder."""
    inside = package_dir / name
    if inside.is_dir():
        return inside
    source = checkout(package_dir)
    if source is not None and (source / name).is_dir():
        return source / name
    raise PackageDataMissing(
        f"lorastudy's {name}/ is neither in the package ({inside}) nor in a checkout around it: "
        "reinstall lorastudy from its wheel or its checkout (pip install .)"
    )


def notebooks_dir(package_dir: Path = PACKAGE_DIR) -> Path:
    return data_dir("notebooks", package_dir)


def params_dir(package_dir: Path = PACKAGE_DIR) -> Path:
    return data_dir("params", package_dir)


def templates(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """The params files a study can start from, by name (`smoke` for params/smoke.yaml)."""
    return {path.stem: path for path in sorted(params_dir(package_dir).glob("*.yaml"))}


def installable_copy(folder: Path, package_dir: Path = PACKAGE_DIR) -> Path:
    """The package as a wheel installs it, its notebooks and params inside: the package itself
    where it is installed, else a copy made under `folder` from the checkout. What a worker that
    has no checkout imports (the Ray executor ships it with the job)."""
    if checkout(package_dir) is None:
        return package_dir
    staged = Path(folder) / "lorastudy"
    shutil.copytree(package_dir, staged, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in DATA_FOLDERS:
        shutil.copytree(data_dir(name, package_dir), staged / name, ignore=shutil.ignore_patterns(".*"))
    return staged
