"""Filling calls with what the lookup found.

:class:`CallerLookup` observes the call tracker.  When a call of one of its
``directions`` is created (or first becomes one) it looks the other party's
number up — seed 002's ``number``: the caller's of an incoming call (and of an
internal one: the colleague calling), the called number of an outgoing one — and,
when the answer comes, sets the call's ``name`` and ``external_id`` and adds
the rest of the data to ``call.data``, then publishes ``EVENT_CALL_CHANGE``.

The lookup starts as the caller's channel appears, before any agent's phone
rings; a source that answers before the call reaches an agent has the call
filled when ``EVENT_CALL_RINGING`` is published, so the agent bar shows the
name with the ringing call.  A slower answer fills the call later, and the
change event tells everyone then.  Nothing waits for a lookup: a call is
never held back by one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from twisted.logger import Logger
from twisted.python.failure import Failure

from ucs.calls.call import INCOMING, OUTGOING, Call
from ucs.calls.tracker import CallObserver
from ucs.events import EVENT_CALL_CHANGE
from ucs.lookup.service import LookupResult, LookupService


class Publisher(Protocol):
    def publish(self, name: str, subject: Any = None, **args: Any) -> None: ...


def fill_call(call: Call, result: LookupResult) -> None:
    """Put a lookup's result into ``call`` (an outgoing call's ``called_name`` too,
    unless the directory named the called phone)."""
    fields = [("name", result.name), ("external_id", result.external_id)]
    if call.direction == OUTGOING and not call.called_name:
        fields.append(("called_name", result.name))
    for field, value in fields:
        if not value:
            continue
        try:
            setattr(call, field, value)
        except AttributeError:  # a Call without the field: keep it with the data
            call.data[field] = value
    call.data.update(result.extra)


class CallerLookup(CallObserver):
    log = Logger(namespace="ucs.lookup")

    def __init__(
        self,
        service: LookupService,
        bus: Publisher,
        clock: Any,
        directions: Iterable[str] = (INCOMING,),
        normalized: bool = True,
    ) -> None:
        self._service = service
        self._bus = bus
        self._clock = clock
        self.directions = frozenset(directions)
        #: Look up the E.164 form of the number (``caller_number_norm``) when there is one.
        self.normalized = normalized
        #: The number looked up for each active call: a call whose number to look up
        #: changes (a phone's call that turns out to leave through a trunk) is asked again.
        self._started: dict[str, str] = {}
        self.results: dict[str, LookupResult] = {}  # active calls' results, by uniqueid

    def number_of(self, call: Call) -> str:
        """The number to look up: whom an outgoing call calls, who calls otherwise."""
        if call.direction == OUTGOING:
            return (self.normalized and call.called_number_norm) or call.called_number
        if self.normalized and call.caller_number_norm:
            return call.caller_number_norm
        return call.caller_number

    def call_created(self, call: Call) -> None:
        self._maybe_start(call)

    def call_changed(self, call: Call) -> None:
        self._maybe_start(call)

    def call_ended(self, call: Call) -> None:
        self._started.pop(call.uniqueid, None)
        self.results.pop(call.uniqueid, None)

    def _maybe_start(self, call: Call) -> None:
        if not self._service.sources:
            return  # nothing to look in (the transformer only ever sees what a source found)
        if call.direction not in self.directions:
            return
        number = self.number_of(call)
        if not number or self._started.get(call.uniqueid) == number:
            return
        self._started[call.uniqueid] = number
        calling = [True]
        d = self._service.lookup(number)
        d.addCallback(self._found, call, calling)
        d.addErrback(self._failed, call, number)
        calling[0] = False

    def _found(self, result: LookupResult, call: Call, calling: list[bool]) -> None:
        if not result.found or self._started.get(call.uniqueid, result.number) != result.number:
            return  # unknown, or the call has moved on to another number meanwhile
        fill_call(call, result)
        if call.uniqueid in self._started:
            self.results[call.uniqueid] = result
        if call.ended:
            return
        if calling[0]:
            # Answered at once (a static table), inside call_created: tell the
            # others after the tracker has announced the call.
            self._clock.callLater(0, self._publish, call)
        else:
            self._publish(call)

    def _publish(self, call: Call) -> None:
        if not call.ended:
            self._bus.publish(EVENT_CALL_CHANGE, call)

    def _failed(self, failure: Failure, call: Call, number: str) -> None:
        self.log.failure("caller lookup of {number} (call {uniqueid}) failed", failure,
                         number=number, uniqueid=call.uniqueid)
