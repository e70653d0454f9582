"""Errors users see: each names the thing at fault and how to fix it."""


class MMRouterError(Exception):
    """Base class for mmrouter's user-facing errors."""


class SpecError(MMRouterError, ValueError):
    """A zoo spec YAML is malformed or refers to something that does not exist."""

    def __init__(self, path, field: str, problem: str, fix: str):
        self.path, self.field = path, field
        super().__init__(f"{path}: field {field!r}: {problem}. Fix: {fix}")


class ConfigError(MMRouterError, ValueError):
    """A recipe or override has an invalid value."""


class InputError(MMRouterError, ValueError):
    """A routing input (text, image) cannot be used."""


class DataError(MMRouterError, ValueError):
    """A data file a spec points to (scores.csv, queries.jsonl) has a bad line or value."""
