"""Name -> class registries, so adding a candidate source, encoder or router is one decorated class."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A plain name -> object mapping filled by a decorator.

    Each registry instance belongs to one kind of thing (encoders, routers, ...); there is no module-level
    mutable state beyond the registry objects that define the plug-in points.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._entries[name]!r}")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise KeyError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}. "
                f"Register a new one with @{self.kind.upper().replace(' ', '_')}_REGISTRY.register(name)."
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
