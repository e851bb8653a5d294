"""Store errors: each message says what went wrong and, for URLs, what is accepted."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked (unreachable database, closed store, ...)."""


class StoreURLError(StoreError, ValueError):
    """A store URL UCS cannot use; the message says what is accepted."""
