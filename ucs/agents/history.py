"""An agent's recent calls (seed 002 v4.34's call history): from the store's CDRs of
the calls the user's phones took part in, filtered, with the missed calls counted.

Which calls: every CDR with a leg on one of the user's lines (``User.lines``, so a
call taken on another desk shows too; the store's ``cdr_party`` table indexes the
phones of each CDR), the newest :data:`WINDOW` of them.  Each is shown *as the phone
saw it* (:func:`entry_of`): ``direction`` ``OUTGOING`` when the phone placed it,
``INTERNAL`` for a call between phones, else ``INCOMING``; ``number`` and ``name``
the other party's; ``result``:

- ``answered``: talked on one of the user's phones;
- ``missed``: it rang one of the user's phones and nobody took it (the caller hung
  up, the queue gave up): a call a colleague took is not missed;
- ``unanswered``: placed from the phone and never answered; ``other``: rang here,
  taken elsewhere.

Missed calls newer than the last time the agent looked (``history.seen``, kept in
the store: namespace ``history.seen``, key the user id) are the bar's badge; a new
one is pushed at once (``agent.missed``: the count and the entry).
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from ucs import events as ev
from ucs.calls.call import Call
from ucs.constants import INCOMING, INTERNAL, OUTGOING
from ucs.directory.directory import Directory
from ucs.directory.model import User
from ucs.error import InvalidDataInput

#: How many of the newest calls of the user's phones are looked at.
WINDOW = 500
MAX_LIMIT = 100
SEEN = "history.seen"
DIRECTIONS = (INCOMING, OUTGOING, INTERNAL)
RESULTS = ("answered", "missed", "unanswered", "other")


class HistoryStore(Protocol):
    def list_cdrs(self, since: float | None = None, until: float | None = None, limit: int = 100,
                  newest_first: bool = False, devices: list[str] | None = None) -> Deferred[list[dict[str, Any]]]: ...
    def kv_get(self, namespace: str, key: str, default: Any = None) -> Deferred[Any]: ...
    def kv_set(self, namespace: str, key: str, value: Any) -> Deferred[None]: ...


class Flushable(Protocol):
    def flushed(self) -> Deferred[None]: ...


def entry_of(cdr: dict[str, Any], devices: set[str]) -> dict[str, Any]:
    """One CDR as the phones ``devices`` saw it."""
    raw = cdr.get("data")
    data: dict[str, Any] = raw if isinstance(raw, dict) else {}
    legs = [leg for leg in data.get("legs") or () if isinstance(leg, dict)]
    legs.sort(key=lambda leg: leg.get("created") or 0)
    mine = [leg for leg in legs if leg.get("device") in devices]
    placed = bool(legs) and legs[0].get("device") in devices
    answered = min((leg["answered"] for leg in mine if isinstance(leg.get("answered"), (int, float))), default=None)
    if cdr.get("direction") == INTERNAL:
        direction = INTERNAL
    else:
        direction = OUTGOING if placed else INCOMING
    if placed:
        number = cdr.get("called_number") or cdr.get("connected_number") or ""
        name = data.get("called_name") or cdr.get("connected_name") or ""
    else:
        number = cdr.get("caller_number") or ""
        name = cdr.get("caller_name") or data.get("name") or ""
    if answered is not None:
        result = "answered"
    elif placed:
        result = "unanswered"
    elif cdr.get("connected") is None:
        result = "missed"
    else:
        result = "other"
    end = cdr.get("disconnected")
    return {
        "uniqueid": cdr.get("uniqueid"), "direction": direction, "number": number, "name": name,
        "queue": cdr.get("queue"), "created": cdr.get("created"), "answered": answered,
        "disconnected": end, "duration": (end - answered) if answered is not None and end is not None else 0.0,
        "result": result, "missed": result == "missed", "account_code": cdr.get("account_code") or "",
        "device": mine[0].get("device") if mine else None,
    }


def check_filters(filters: Any) -> dict[str, Any]:
    """``{direction, result, text, limit}``, each optional; :class:`InvalidDataInput` naming what is accepted."""
    if filters is None:
        filters = {}
    if not isinstance(filters, dict):
        raise InvalidDataInput({"filters": f"{filters!r} is not accepted; give an object with direction, result, "
                                           "text, limit"})
    unknown = sorted(set(filters) - {"direction", "result", "text", "limit"})
    if unknown:
        raise InvalidDataInput({"filters": f"unknown keys {unknown}; accepted: direction, result, text, limit"})
    out: dict[str, Any] = {"direction": None, "result": None, "text": "", "limit": 30}
    direction = filters.get("direction")
    if direction not in (None, ""):
        if not isinstance(direction, str) or direction.upper() not in DIRECTIONS:
            raise InvalidDataInput({"direction": f"{direction!r} is not accepted; give INCOMING, OUTGOING, INTERNAL "
                                                 "or null for all"})
        out["direction"] = direction.upper()
    result = filters.get("result")
    if result not in (None, ""):
        if not isinstance(result, str) or result.lower() not in RESULTS:
            raise InvalidDataInput({"result": f"{result!r} is not accepted; give answered, missed, unanswered, "
                                              "other or null for all"})
        out["result"] = result.lower()
    text = filters.get("text")
    if text not in (None, ""):
        if not isinstance(text, str) or len(text) > 100:
            raise InvalidDataInput({"text": "give the text to look for in numbers, names and queues "
                                            "(a string of at most 100 characters)"})
        out["text"] = text.strip().lower()
    limit = filters.get("limit")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidDataInput({"limit": f"{limit!r} is not accepted; give an integer from 1 to {MAX_LIMIT}"})
        out["limit"] = limit
    return out


def matches(entry: dict[str, Any], f: dict[str, Any]) -> bool:
    if f["direction"] and entry["direction"] != f["direction"]:
        return False
    if f["result"] and entry["result"] != f["result"]:
        return False
    if f["text"]:
        hay = " ".join(str(entry.get(k) or "") for k in ("number", "name", "queue")).lower()
        return f["text"] in hay
    return True


class CallHistory:
    """The agents' recent calls.  ``agents`` finds who is paired with a phone
    (``by_device``), for the missed-call pushes."""

    log = Logger()

    def __init__(self, directory: Directory, agents: Any, store: HistoryStore, cdrs: Flushable, bus: Any,
                 clock: IReactorTime) -> None:
        self._directory = directory
        self._agents = agents
        self._store = store
        self._cdrs = cdrs
        self._bus = bus
        self._clock = clock

    def devices_of(self, user: User) -> set[str]:
        devices = {self._directory.lines[i].device for i in user.lines if i in self._directory.lines}
        agent = self._agents.get(user.id)
        if agent is not None:
            devices.add(agent.device)
        return devices

    async def _entries(self, user: User) -> list[dict[str, Any]]:
        devices = self.devices_of(user)
        if not devices:
            return []
        await self._cdrs.flushed()  # a call that just ended is in the store before it is looked for
        cdrs = await self._store.list_cdrs(limit=WINDOW, newest_first=True, devices=sorted(devices))
        return [entry_of(c, devices) for c in cdrs]

    async def _seen(self, user: User) -> float:
        seen = await self._store.kv_get(SEEN, str(user.id), 0.0)
        return float(seen) if isinstance(seen, (int, float)) else 0.0

    async def recent(self, user: User, filters: Any = None) -> dict[str, Any]:
        """``history.list``: ``{calls, missed, seen}`` — the filtered entries (newest
        first), the count of missed calls not seen yet, and when the agent last looked."""
        f = check_filters(filters)
        entries = await self._entries(user)
        seen = await self._seen(user)
        missed = sum(1 for e in entries if e["missed"] and (e["created"] or 0) > seen)
        return {"calls": [e for e in entries if matches(e, f)][:f["limit"]], "missed": missed, "seen": seen}

    async def mark_seen(self, user: User) -> dict[str, Any]:
        """``history.seen``: the missed calls so far are seen (the badge goes)."""
        now = self._clock.seconds()
        await self._store.kv_set(SEEN, str(user.id), now)
        return {"missed": 0, "seen": now}

    # -- a missed call, at once ------------------------------------------------------------

    def call_hung_up(self, call: Any, args: dict[str, Any]) -> None:
        """Bus ``call.hangup``: a call that rang an agent's phone and nobody took is
        pushed to that agent with the new count (once its CDR is queued for the store)."""
        if not isinstance(call, Call) or call.connected is not None:
            return
        origin = call.legs.get(call.origin)
        for leg in call.legs.values():
            agent = self._agents.by_device(leg.device)
            if agent is None or leg is origin or leg.answered is not None:
                continue
            self._clock.callLater(0, self._push, agent, call.uniqueid)

    def _push(self, agent: Any, uniqueid: str) -> None:
        async def push() -> None:
            if agent.gone:
                return
            result = await self.recent(agent.user, {"result": "missed", "limit": 1})
            call = next((c for c in result["calls"] if c["uniqueid"] == uniqueid), None)
            self._bus.publish(ev.EVENT_AGENT_MISSED, agent, missed=result["missed"], call=call)

        d = Deferred.fromCoroutine(push())
        d.addErrback(lambda f: self.log.failure("history: missed call {uid} not pushed", f, uid=uniqueid))
