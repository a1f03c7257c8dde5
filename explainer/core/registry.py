"""Named registries: the one extension point for each kind of component (recognizers, decoders, packs,
attribute families, assets).

A registry is a dict of name -> entry; looking up a name it does not hold raises `UnknownName`, a
FacexplainError (and a KeyError, for callers that catch that) whose message lists the known names.
To add a component, register it in its registry; nothing else dispatches on names.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from explainer.core.errors import FacexplainError

V = TypeVar("V")


class UnknownName(FacexplainError, KeyError):
    """A name that is not in a registry; the message lists the names that are."""

    def __init__(self, kind: str, name: object, known: Iterable[str]) -> None:
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0])


class Registry(dict[str, V]):
    """name -> entry, in registration order; `registry[name]` raises UnknownName for other names."""

    def __init__(self, kind: str, entries: Mapping[str, V] | None = None) -> None:
        super().__init__(entries or {})
        self.kind = kind

    def __missing__(self, name: str) -> V:
        raise UnknownName(self.kind, name, self)

    def register(self, name: str, entry: V) -> V:
        """Add `entry` under `name`; a name is registered once (a second one would shadow the first)."""
        if name in self:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self[name] = entry
        return entry
