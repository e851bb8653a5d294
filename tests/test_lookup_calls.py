"""Incoming calls on the simulated Asterisk filled from an HTTP lookup source
(a real twisted.web server on 127.0.0.1): before the agent's phone rings when
the source answers in time, after it (with a change event) otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from test_control_stack import ALICE, Stack, started
from test_lookup import Server
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from ucs.calls.call import Call
from ucs.events import EVENT_CALL_CHANGE, EVENT_CALL_RINGING
from ucs.lookup import LookupService, StaticSource
from ucs.lookup.calls import CallerLookup
from ucs.sim.lab import CUSTOMER


class Watch:
    """What the bus said about calls: the name a call had when its agent's phone
    rang, and each change that carried a name."""

    def __init__(self, stack: Stack) -> None:
        self.ringing: list[str] = []
        self.named: list[str] = []
        self._waiting: list[Deferred[Call]] = []
        stack.bus.subscribe(EVENT_CALL_RINGING, lambda call, args: self.ringing.append(call.name))
        stack.bus.subscribe(EVENT_CALL_CHANGE, self._changed)

    def _changed(self, call: Call, args: dict[str, Any]) -> None:
        if call.name:
            self.named.append(call.name)
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(call)

    def next_named(self, timeout: float = 10.0) -> Deferred[Call]:
        """The next call a lookup named; fails (TimeoutError) rather than hang when none is."""
        d: Deferred[Call] = Deferred()
        self._waiting.append(d)
        d.addTimeout(timeout, reactor)
        return d


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    pytest_twisted.blockon(Deferred.fromCoroutine(s.close()))


async def stack_with_lookup(server: Server, **kw: Any) -> tuple[Stack, CallerLookup]:
    s = await started()
    source = server.source(s.clock, timeout=3.0)
    filler = CallerLookup(LookupService([source]), s.bus, s.clock, **kw)
    s.tracker.observers.insert(0, filler)
    return s, filler


@pytest_twisted.ensureDeferred
async def test_a_lookup_in_time_names_the_call_before_the_phone_rings(server: Server) -> None:
    s, filler = await stack_with_lookup(server, normalized=False)
    watch = Watch(s)
    try:
        arrived = server.crm.next_request()
        named = watch.next_named()
        s.sim.caller_calls("5000", CUSTOMER)  # nobody in the queue yet: the caller waits
        await s.barrier()
        await arrived
        call = await named
        assert (call.name, call.external_id) == ("Our Customer", "C-17")
        assert call.data["companies"] == ["First", "Second"] and watch.ringing == []
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        await s.advance(0.5)
        assert watch.ringing and set(watch.ringing) == {"Our Customer"}
        assert server.crm.requests[0][0] == CUSTOMER
        assert filler.results[call.uniqueid].lookup_id == 1
        await s.advance(1.5)
        await s.settle(s.control.hangup(ALICE))
        await s.advance(0.5)
        assert call.uniqueid not in filler.results
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_a_late_lookup_fills_the_call_after_it_rang(server: Server) -> None:
    s, _ = await stack_with_lookup(server)
    watch = Watch(s)
    server.crm.hold = True
    try:
        s.sim.phone("SIP/1001").set_behaviour(answer_after=None)
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        arrived = server.crm.next_request()
        s.sim.caller_calls("5000", CUSTOMER)
        await s.advance(0.5)
        await arrived
        (call,) = s.tracker.active_calls()
        assert watch.ringing == [""] and call.name == ""
        # The normalized number is asked by default.
        assert server.crm.requests[0][0] == "+420777123456"
        server.crm.special["+420777123456"] = (200, b'{"name": "Late Customer", "external_id": 7}')
        named = watch.next_named()
        server.crm.release()
        assert await named is call
        assert (call.name, call.external_id) == ("Late Customer", "7")
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_only_incoming_calls_from_outside_are_looked_up() -> None:
    s = await started()
    table = StaticSource(1, {CUSTOMER: {"name": "Our Customer"}, "1003": {"name": "Not for colleagues"}})
    asked: list[str] = []
    real = table.lookup
    table.lookup = lambda number: (asked.append(number), real(number))[1]  # type: ignore[method-assign]
    filler = CallerLookup(LookupService([table]), s.bus, s.clock, normalized=False)
    s.tracker.observers.insert(0, filler)
    try:
        s.sim.call_from_line(s.sim.line("SIP/1003"), "1002")  # a colleague: internal
        await s.advance(1.5)
        assert asked == []
        call = await s.incoming()
        assert asked == [CUSTOMER] and call.name == "Our Customer"
    finally:
        await s.stop()
