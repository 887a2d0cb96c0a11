"""A named collection of declarations (tasks, methods, built-in models) that studies refer to
by name; code outside lorastudy can add its own before a study runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, check: Callable[[T], None] = lambda item: None):
        self.kind, self._check, self._items = kind, check, {}

    def register(self, item: T) -> T:
        self._check(item)
        self._items[item.name] = item
        return item

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r} (known: {', '.join(self._items)})") from None

    @contextmanager
    def registered(self, item: T) -> Iterator[T]:
        """`item` registered for the duration of a block (tests, a notebook trying a new one)."""
        before = self._items.get(item.name)
        self.register(item)
        try:
            yield item
        finally:
            if before is None:
                self._items.pop(item.name, None)
            else:
                self._items[item.name] = before

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items.values()))
