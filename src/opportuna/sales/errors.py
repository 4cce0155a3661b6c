"""Domain errors: form errors in views, 409/412/422 in the API, CommandError in the CLI."""

from __future__ import annotations

from typing import Any


class SalesRuleError(Exception):
    """A sales rule was broken (e.g. moving a closed opportunity). The message is for users."""

    def __init__(self, message: Any, *, field: str | None = None) -> None:
        super().__init__(str(message))
        self.message = message
        self.field = field


class ConflictError(SalesRuleError):
    """Someone saved the opportunity since it was read: the given version is stale."""

    def __init__(self, message: Any, *, current_version: int) -> None:
        super().__init__(message)
        self.current_version = current_version
