"""`lorastudy init DIR`: a folder to run a study in, laid out as the checkout is. It holds
`params/<template>.yaml` to edit and, with `--notebooks`, copies of the package's notebooks for
JupyterLab whose parameters point at that params file and that folder, so a cell run by hand
reads and writes the same `runs/` as `lorastudy run params/<template>.yaml` run in DIR.

`lorastudy run` executes the package's notebooks, never these copies: an edited copy changes
nothing a study records (a change to a step belongs in the package: CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import __version__
from .study.schema import ConfigError
from .util.package_data import notebooks_dir, templates

# The line of a notebook's parameters cell that names the params file (as the checkout's say
# it: relative to notebooks/, which Jupyter runs a notebook in).
PARAMS_LINE = re.compile(r'^params_file = "[^"]*"', re.MULTILINE)


def problems(folder: Path, template: str) -> list[str]:
    """What stops an init, before anything is written."""
    found = []
    known = templates()
    if template not in known:
        found.append(f"--template: no template {template!r} (known: {', '.join(known)})")
    if folder.exists() and not folder.is_dir():
        found.append(f"init: {folder} is a file, not a folder")
    elif folder.is_dir() and any(folder.iterdir()):
        found.append(
            f"init: {folder} is not empty; init writes only into a new or empty folder, so it overwrites nothing"
        )
    return found


def params_text(template: str) -> str:
    source = templates()[template].read_text()
    header = (
        f"# Started by `lorastudy init --template {template}` (lorastudy {__version__}). Edit it, then, in\n"
        "# this folder (which holds runs/ and rendered/):\n"
        f"#   lorastudy check params/{template}.yaml\n"
        f"#   lorastudy run params/{template}.yaml\n"
    )
    return header + source


def notebook_copy(source: Path, params_file: str) -> str:
    """A notebook whose parameters cell names `params_file`, the rest as the package has it."""
    nb = json.loads(source.read_text())
    cells = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{source.name}: expected one parameters cell, found {len(cells)}")
    text = "".join(cells[0]["source"])
    new, count = PARAMS_LINE.subn(f'params_file = "{params_file}"', text)
    if count != 1:
        raise ValueError(f"{source.name}: its parameters cell does not name params_file once")
    cells[0]["source"] = new.splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def init_study(folder: Path, template: str, notebooks: bool) -> list[Path]:
    """Write the study's params file (and notebook copies); the paths written, params first."""
    folder = Path(folder)
    found = problems(folder, template)
    if found:
        raise ConfigError(found)
    params = folder / "params" / f"{template}.yaml"
    params.parent.mkdir(parents=True, exist_ok=True)
    params.write_text(params_text(template))
    written = [params]
    if notebooks:
        (folder / "notebooks").mkdir()
        for source in sorted(notebooks_dir().glob("*.ipynb")):
            target = folder / "notebooks" / source.name
            target.write_text(notebook_copy(source, f"../params/{template}.yaml"))
            written.append(target)
    return written
