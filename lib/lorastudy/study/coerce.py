"""A params value checked against its field's type and coerced to it (YAML reads 1e-4 as a
string, a list where a tuple is declared), and the type named in an error."""

from __future__ import annotations

import re
import types
import typing
from typing import Any, Literal, Union


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return f"a list of {type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        key, value = typing.get_args(tp)
        return f"a mapping of {type_name(key)} to {type_name(value)}"
    if tp is type(None):
        return "null"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """(ok, value) for value against a type annotation; never guesses across types."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return (value in typing.get_args(tp), value)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            ok, coerced = coerce(arg, value)
            if ok:
                return True, coerced
        return False, value
    if origin in (list, tuple):
        if isinstance(value, (int, str)) and not isinstance(value, bool) and origin is tuple:
            value = [value]  # `seeds: 0` means `seeds: [0]`
        if not isinstance(value, (list, tuple)):
            return False, value
        (inner, *_rest) = typing.get_args(tp)
        items = [coerce(inner, v) for v in value]
        if not all(ok for ok, _ in items):
            return False, value
        return True, origin(v for _, v in items)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        if not isinstance(value, dict):
            return False, value
        items = [(coerce(key_type, k), coerce(value_type, v)) for k, v in value.items()]
        if not all(k[0] and v[0] for k, v in items):
            return False, value
        return True, {k[1]: v[1] for k, v in items}
    if tp is type(None):
        return (value is None, value)
    if tp is bool:
        return (isinstance(value, bool), value)
    if tp is int:
        return (isinstance(value, int) and not isinstance(value, bool), value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        # PyYAML reads 2e-4 (no dot) as a string; accept strings that are plain numbers.
        if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value.strip()):
            return True, float(value)
        return False, value
    if tp is str:
        return (isinstance(value, str), value)
    raise TypeError(f"unsupported annotation {tp}")
