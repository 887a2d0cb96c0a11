"""Finding a method by name: a registered one (built-in, or one code outside lorastudy
registered), or one of a study's grid cells, which only that study's params define."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .declaration import METHODS, Method
from .grid import cells

if TYPE_CHECKING:
    from ..study.schema import StudyConfig


def get(name: str, cfg: StudyConfig | None = None) -> Method:
    """The method `name`: registered, or (given the study's params) a cell of its grid."""
    if name not in METHODS and cfg is not None:
        cell = cells(cfg).get(name)
        if cell is not None:
            return cell
    return METHODS.get(name)


def known(name: str, cfg: StudyConfig | None = None) -> bool:
    return name in METHODS or (cfg is not None and name in cells(cfg))
