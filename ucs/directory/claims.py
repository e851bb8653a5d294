"""What must be one entity's alone, claimed in the store as well as checked in memory.

A user name, a group's, a team's or an AUX reason's name, a queue's Asterisk
name, a line's device and its pairing identifiers are each one entity's.
:mod:`ucs.directory.validate` checks that against the directory in memory --
which another UCS node's change reaches only through :mod:`ucs.cluster.dirsync`,
a moment later (issue 20: two nodes adding the same user name at once both
succeeded, and two nodes starting on an empty store both made an ``admin``).
So each such value is also a key of the store, ``dir.<kind>.claims`` /
``<field>:<value>`` (folded as the check folds it) → the entity's id, inserted
as new (:class:`~ucs.store.base.KVNew`) in the same transaction as the entity,
and deleted with it or when the value changes.  Of two nodes claiming a value at
the same moment, the store lets one insert it; the other is refused
(:class:`~ucs.store.errors.KeyTaken`), reads the kind again, and its check then
says the value is taken, by whom.

A claim nobody holds any more (a store written by a UCS from before claims, or
edited by hand) is *stale*: the directory, having read the kind again, finds no
entity with that value and writes the claim over (:meth:`Directory.apply`).
"""

from __future__ import annotations

from typing import Any

from ucs.directory.validate import norm_identifier
from ucs.store.base import KV_DELETE, KVNew

#: kind → the fields claimed, each with whether its value is compared without case
#: (as :func:`ucs.directory.validate._unique` compares it).
CLAIMED: dict[str, tuple[tuple[str, bool], ...]] = {
    "users": (("username", True),),
    "groups": (("name", True),),
    "teams": (("name", True),),
    "queues": (("asterisk_name", False),),
    "lines": (("device", False),),
    "auxreasons": (("name", True),),
}

_SUFFIX = ".claims"


def namespace(kind: str) -> str:
    return f"dir.{kind}{_SUFFIX}"


def kind_of(ns: str) -> str | None:
    """The kind whose claims ``ns`` holds, or ``None`` for another namespace."""
    if ns.startswith("dir.") and ns.endswith(_SUFFIX):
        return ns[len("dir."):-len(_SUFFIX)]
    return None


def claims(kind: str, entity: Any) -> set[str]:
    """The keys ``entity`` (``None``: none) holds."""
    if entity is None:
        return set()
    out = set()
    for field, fold in CLAIMED.get(kind, ()):
        value = getattr(entity, field, None)
        if isinstance(value, str) and value:
            out.add(f"{field}:{value.lower() if fold else value}")
    if kind == "lines":
        out |= {f"identifier:{norm_identifier(i)}" for i in entity.identifiers}
    return out


def changes(kind: str, entity_id: int, before: Any, after: Any,
            stale: set[tuple[str, str]]) -> tuple[list[tuple[str, str, Any]], list[tuple[str, str, Any]]]:
    """The store writes that move ``entity_id``'s claims from ``before`` to ``after``:
    (the releases, the new claims) -- a batch writes every release before any claim, so
    a value one entity lets go of another may take in the same batch.  A key in
    ``stale`` is written over instead of inserted as new."""
    ns = namespace(kind)
    old, new = claims(kind, before), claims(kind, after)
    released = [(ns, key, KV_DELETE) for key in sorted(old - new)]
    taken = [(ns, key, entity_id if (ns, key) in stale else KVNew(entity_id)) for key in sorted(new - old)]
    return released, taken


def held(kind: str, table: dict[int, Any], key: str) -> bool:
    """Whether an entity of ``table`` holds ``key``."""
    return any(key in claims(kind, entity) for entity in table.values())
