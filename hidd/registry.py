"""Name → class tables for choices made by name in a config (sampler stages, tone curves, PSF families)."""
from __future__ import annotations


class Registry:
    """Name → class table filled by the `register` decorator; `get` lists the valid names on a typo."""

    def __init__(self, kind: str, key: str | None = None):
        self.kind = kind  # what the names are names of, for error messages
        self.key = key or f"sampler.{kind}"  # the config key the names are given under, for error messages
        self._classes: dict[str, type] = {}

    def register(self, name: str):
        def decorator(cls):
            if name in self._classes:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._classes[name] = cls
            return cls

        return decorator

    def get(self, name: str) -> type:
        if name not in self._classes:
            valid = ", ".join(self.names())
            raise ValueError(f"{self.key}: unknown {self.kind} '{name}' (choose from {valid})")
        return self._classes[name]

    def names(self) -> list[str]:
        return sorted(self._classes)
