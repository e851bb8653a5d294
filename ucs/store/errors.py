"""Store errors: each message says what went wrong and, for URLs, what is accepted."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot do what was asked (unreachable database, closed store, ...)."""


class StoreURLError(StoreError, ValueError):
    """A store URL UCS cannot use; the message says what is accepted."""


class StoreRefused(StoreError, ValueError):
    """The store refused a record for what it holds (a number JSON cannot carry, text
    that is not valid Unicode, a value the database rejects), not because the
    database is away: writing the same record again fails again.  ``field`` names
    the value when it is known (``None``: the database did not say which).

    The CDR writer tells the two apart (:mod:`ucs.calls.cdr`): an outage is waited
    out, a refused CDR is stored without what was refused."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class KeyTaken(StoreError):
    """A key written as new (:class:`ucs.store.base.KVNew`) was there already: another
    writer took it first (two UCS nodes adding an entity with the same id).  Nothing of
    the write was kept; the writer reads what is there and picks again."""

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"{namespace}/{key} exists already (another writer took it first)")
        self.namespace = namespace
        self.key = key


class Changed(StoreError):
    """A document written over what the writer had read (:class:`ucs.store.base.KVExpect`) is
    no longer that: another writer changed or deleted it since (two UCS nodes editing one
    directory entity at once).  Nothing of the write was kept; the writer reads the document
    again and makes its change over what is there now."""

    def __init__(self, namespace: str, key: str, rev: int) -> None:
        super().__init__(f"{namespace}/{key} is no longer at revision {rev} (another writer changed or "
                         "deleted it first)")
        self.namespace = namespace
        self.key = key
        self.rev = rev


class Fenced(StoreError):
    """A write fenced by an ownership's term (:class:`ucs.store.base.Fence`) was refused: the
    ``election`` table names a newer term -- another node took the AMI link over since, and its
    documents are the truth now (issue 20).  Nothing of the write was kept.  Writing again
    with the same term fails again: the writer has been demoted and stops."""

    def __init__(self, lock: str, term: int, now: int | None, node: str | None) -> None:
        held = (f"term {now} of {node}" if now is not None else "no term (the election row is gone)")
        super().__init__(f"the AMI link's ownership (lock {lock}) is at {held}, not this writer's term {term}")
        self.lock = lock
        self.term = term
        self.now = now
        self.node = node
