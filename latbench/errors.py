"""One error family for everything a user can get wrong.

Every `LatbenchError` carries a message meant for a person: it names the thing at fault (file,
field, key) and, where there is one, the fix. The CLI prints it as a single line and exits with
`exit_code`; programming errors are not LatbenchErrors and keep their traceback.
"""

from __future__ import annotations


class LatbenchError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 2

    def __init__(self, message: str):
        # Folded to one line: the CLI contract is one line per error.
        super().__init__(" ".join(str(message).split()))


class SpecError(LatbenchError, ValueError):
    """A block spec or key is invalid."""


class ArchError(LatbenchError, ValueError):
    """An architecture file or vector is malformed or outside what is allowed."""


class SpaceError(LatbenchError, ValueError):
    """A search-space file is malformed, or a network lies outside the space."""


class TableError(LatbenchError):
    """A latency table is missing, corrupt, or does not fit the request."""


class MissingKeysError(TableError):
    """A prediction needs block keys that the table lacks."""

    def __init__(self, message: str, keys: list[str]):
        super().__init__(message)
        self.keys = keys


class SearchError(LatbenchError):
    """A search was asked something it cannot do (empty group, bad budget, bad data)."""


def where(source: object, field: str | None = None) -> str:
    """Format the "file: field:" prefix of an error message."""
    parts = [str(source)] if source else []
    if field:
        parts.append(field)
    return ": ".join(parts) + (": " if parts else "")
