"""A params file's grid: each cell an ordinary method whose declaration is derived from the
method it crosses, at config time."""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..study.schema import StudyConfig
from .declaration import METHODS, SETTING_SECTIONS, Comparison, Method, _check


def _value_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def cell_name(method: str, point: Mapping[str, Any]) -> str:
    """A grid cell's name: the method's, then each setting's field and value (lora-r8)."""
    return "-".join([method] + [f"{key.split('.')[1]}{_value_text(v)}" for key, v in point.items()])


def _point_text(point: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} = {_value_text(v)}" for key, v in point.items())


def _point_title(point: Mapping[str, Any]) -> str:
    return " ".join(f"{key.split('.')[1]}{_value_text(v)}" for key, v in point.items())


def _shade(colour: str, step: int) -> str:
    """The parent's colour, lighter or darker by grid step, so a method's cells read as its family."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    factor = (0.55, 1.35, 0.75, 1.6, 0.4)[step % 5]
    mixed = [min(255, int(c * factor)) if factor < 1 else int(c + (255 - c) * (factor - 1)) for c in rgb]
    return "#" + "".join(f"{min(255, c):02x}" for c in mixed)


def grid_points(cfg: StudyConfig, method: Method) -> list[dict[str, Any]]:
    """The grid's cells for one method, in the params file's order, without the cell whose values
    are all the method's own (that cell is the method itself)."""
    own = method.settings(cfg)
    keys = list(cfg.grid.settings)
    points = []
    for values in itertools.product(*(cfg.grid.settings[k] for k in keys)):
        point = dict(zip(keys, values))
        if any(getattr(getattr(own, k.split(".")[0]), k.split(".")[1]) != v for k, v in point.items()):
            points.append(point)
    return points


def _at(cfg: StudyConfig, method: Method, point: dict[str, Any]) -> str:
    """The method of the study at a grid cell: the cell, or the method itself where the cell's
    settings are its own."""
    return cell_name(method.name, point) if point in grid_points(cfg, method) else method.name


def grid_cell(cfg: StudyConfig, method: Method, point: dict[str, Any], step: int) -> Method:
    """The declaration of one grid cell: the method with the cell's settings, compared with the
    method itself and, at the same cell, with the grid-crossed methods it is compared with."""
    text, title = _point_text(point), f"{method.title} {_point_title(point)}"
    own = method.settings(cfg)
    own_text = _point_text({k: getattr(getattr(own, k.split(".")[0]), k.split(".")[1]) for k in point})
    compares = [Comparison(method.name, f"what {text} instead of {own_text} changes for {method.title}")]
    for c in method.comparisons():
        if c.method in cfg.grid.methods:
            compares.append(Comparison(_at(cfg, METHODS.get(c.method), point), f"{c.reason}, at {text}"))
    parent = method
    return dataclasses.replace(
        method,
        name=cell_name(method.name, point),
        title=title,
        colour=_shade(method.colour, step),
        describe=lambda c: f"{title}: " + parent.describe(c),
        compares_to=tuple(compares),
        phrase="",
        overrides={**method.overrides, **point},
        grid_of=method.name,
        grid_point=dict(point),
    )


def cells(cfg: StudyConfig) -> dict[str, Method]:
    """The study's grid cells by name, in the params file's order: each the declaration of the
    method it crosses with the cell's settings. Derived from the study alone, so every kernel
    derives the same ones, and never registered: a config's grid is its own."""
    key = json.dumps(
        [cfg.methods, dataclasses.asdict(cfg.grid), {s: dataclasses.asdict(getattr(cfg, s)) for s in SETTING_SECTIONS}],
        sort_keys=True,
        default=str,
    )
    if key not in _CELLS:
        derived = {}
        for name in cfg.methods:
            if name in cfg.grid.methods and name in METHODS:
                parent = METHODS.get(name)
                for step, point in enumerate(grid_points(cfg, parent)):
                    cell = grid_cell(cfg, parent, point, step)
                    _check(cell)
                    derived[cell.name] = cell
        _CELLS[key] = derived
    return _CELLS[key]


# Derived cells by the settings they derive from (deriving is pure; this only saves the time).
_CELLS: dict[str, dict[str, Method]] = {}


def expand_grid(cfg: StudyConfig) -> StudyConfig:
    """The study with its grid's cells listed after the method each is derived from."""
    if not cfg.grid.settings:
        return cfg
    derived = cells(cfg)
    listed = [n for name in cfg.methods for n in [name, *(c.name for c in derived.values() if c.grid_of == name)]]
    return dataclasses.replace(cfg, methods=tuple(listed))
