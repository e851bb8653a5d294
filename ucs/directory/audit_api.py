"""``audit.list``: the audit log of administrative changes, for superusers.

``filters`` may hold ``actor``, ``source``, ``kind``, ``action``, ``entity_id``
(equal) and ``since``/``until`` (epoch seconds); entries come newest first,
``limit`` at a time; the reply's ``next`` is the ``before_id`` of the next
page (``null`` after the last).
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred

from ucs.api.registry import Param, Registry
from ucs.api.session import Session
from ucs.constants import Role

_TEXT = ("actor", "source", "kind", "action", "entity_id")
_TIMES = ("since", "until")


class AuditReader(Protocol):
    def audit_list(self, **kw: Any) -> Deferred[list[dict[str, Any]]]: ...


def _filters(v: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in v.items():
        if key in _TEXT and isinstance(value, (str, int)) and not isinstance(value, bool):
            out[key] = str(value)
        elif key in _TIMES and isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
        elif key in _TEXT or key in _TIMES:
            raise ValueError(f"{key}: {value!r} is not accepted; give " + (
                "a string" if key in _TEXT else "seconds since the epoch"))
        else:
            raise ValueError(f"{key!r} is not a filter; accepted: {', '.join(_TEXT + _TIMES)}")
    return out


def _limit(v: int) -> int:
    if not 1 <= v <= 1000:
        raise ValueError(f"{v} is not accepted; give an integer from 1 to 1000")
    return v


def register(registry: Registry, store: AuditReader) -> None:
    async def list_(session: Session, filters: dict[str, Any] | None, limit: int | None,
                    before_id: int | None) -> dict[str, Any]:
        limit = limit or 100
        entries = await store.audit_list(limit=limit, before_id=before_id, **(filters or {}))
        return {"entries": entries, "next": entries[-1]["id"] if len(entries) == limit else None}

    registry.add("audit.list", list_, [
        Param("filters", dict, required=False, check=_filters,
              doc="actor, source, kind, action, entity_id; since, until (epoch seconds)"),
        Param("limit", int, required=False, check=_limit, doc="entries per page, 1-1000 (100)"),
        Param("before_id", int, required=False, doc="the previous reply's next"),
    ], role=Role.SUPERUSER, doc="The audit log of administrative changes, newest first.")
