"""One small registry class behind every kind of extension (after lm-evaluation-harness's
``@register_model``): measurements (:mod:`alignkit.results.measures`), tasks
(:mod:`alignkit.tasks`), training objectives (:mod:`alignkit.training.objectives`) and fused
encoder forwards (:mod:`alignkit.inputs.fused`). The core looks things up by name; it never
names a concrete entry.

>>> COLOURS = Registry("colour")
>>> @COLOURS.register("red")
... def red():
...     return "#f00"
>>> COLOURS["red"]()
'#f00'
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from alignkit.errors import AlignkitError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order. ``kind`` names the entries in error messages."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Register ``entry`` under ``name``; a second registration of a name is an error
        unless ``replace`` (tests and plug-ins that deliberately override an entry)."""
        if not name or not isinstance(name, str):
            raise ValueError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} is registered twice; pass replace=True to override it")
        self._entries[name] = entry
        return entry

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        def deco(entry: T) -> T:
            return self.add(name, entry, replace=replace)

        return deco

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str, default: T | None = None) -> T | None:
        return self._entries.get(name, default)

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise AlignkitError(f"unknown {self.kind} {name!r}; use one of {', '.join(self._entries) or '(none)'}") \
                from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"
