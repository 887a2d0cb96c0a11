"""The methods a study compares, each one declaration (declaration.py) that training,
evaluation, the pipeline, the result tables and the report read, holding no per-method branch:
the built-in ones (builtin.py), registered on import, and a params file's grid cells
(grid.py), derived from the study and never registered; `get(name, cfg)` finds either
(lookup.py)."""

from .builtin import FULL, LORA, QLORA
from .declaration import DECOMPOSITIONS, METHODS, SETTING_SECTIONS, Comparison, Decomposition, Method, register
from .grid import cell_name, cells, expand_grid, grid_points
from .lookup import get, known

__all__ = [
    "DECOMPOSITIONS",
    "FULL",
    "LORA",
    "METHODS",
    "QLORA",
    "SETTING_SECTIONS",
    "Comparison",
    "Decomposition",
    "Method",
    "cell_name",
    "cells",
    "expand_grid",
    "get",
    "grid_points",
    "known",
    "register",
]
