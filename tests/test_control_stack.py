"""Call control against the simulated PBX over a real TCP AMI link: the stack
the other ``test_control_*`` modules share, and the basic hang-up cases.

The simulator runs on a ``Clock`` the test advances; the sockets run on the
real reactor.  A Ping through UCS's own AMI link is the barrier: AMI is one
ordered stream, so once its answer is back every event written before it has
been applied to the model (and call control has seen it).
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock

from ucs.ami.client import AMIClient
from ucs.ami.message import Message
from ucs.bus import EventBus
from ucs.calls.publisher import DomainPublisher
from ucs.calls.call import Call, Cause
from ucs.calls.cdr import CDRWriter
from ucs.calls.control import CallControl
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.directory.model import Line
from ucs.error import InvalidState
from ucs.pbx.link import PBXLink
from ucs.pbx.pbx import PBX
from ucs.sim import lab
from ucs.sim.lab import CUSTOMER
from ucs.sim.model import Channel as SimChannel
from ucs.sim.server import AMIServer

ALICE = Line(1, "SIP/1001", "Alice Agent", auto_answer="sip-notify")
BOB = Line(2, "SIP/1002", "Bob Agent")
CAROL = Line(3, "SIP/1003", "Carol Agent")
DAVE = Line(4, "SIP/1004", "Dave Agent", auto_answer="sip-notify")


class Ended(CallObserver):
    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}

    def call_ended(self, call: Call) -> None:
        self.calls[call.uniqueid] = call


class Stack:
    """A simulated Asterisk on a port, UCS's ingest path, and call control."""

    def __init__(self, *, store: Any = None, directory: Any = None, filters: tuple[str, ...] = ()) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.sim = lab(self.clock)
        for device in ("SIP/1001", "SIP/1002", "SIP/1003"):
            self.sim.phone(device).set_behaviour(answer_after=1.0)
        self.sim.trunk().set_behaviour(answer_after=1.0)
        self.server = AMIServer(self.sim)
        self.port: Any = reactor.listenTCP(0, self.server, interface="127.0.0.1")
        self.pbx = PBX(self.clock)
        self.ended = Ended()
        self.bus = EventBus()
        self.events: list[tuple[str, Any]] = []
        self.bus.subscribe_all(lambda name, subject, args: self.events.append((name, subject)))
        publisher = DomainPublisher(self.bus)
        self.tracker = CallTracker(self.pbx, self.clock, observers=[self.ended, publisher])
        self.pbx.observers.append(self.tracker)
        self.writer: CDRWriter | None = None
        if store is not None:
            self.writer = CDRWriter(store, reactor)
            self.tracker.observers.append(self.writer)
        self.link = PBXLink(self.pbx, filters)
        self.client = AMIClient(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.port.getHost().port),
            "ucs", "ucslab", self.link,
            clock=reactor, keepaliveInterval=None, retryPolicy=lambda attempt: 0.05,
        )
        self.control = CallControl(
            self.client, self.pbx, self.tracker, self.bus, self.clock,
            directory=directory, store=store, cdrs=self.writer,
        )
        self.pbx.observers.append(self.control.observer)
        self.tracker.observers.append(self.control.observer)

    async def start(self) -> Stack:
        synced = self.link.whenSynced()
        self.client.startService()
        await synced
        await self.barrier()
        return self

    async def barrier(self) -> None:
        await self.client.sendAction("Ping")

    async def advance(self, seconds: float) -> None:
        target = self.clock.seconds() + seconds
        while self.clock.seconds() + 0.25 < target:
            self.clock.advance(0.25)
            await self.barrier()
        self.clock.advance(max(0.0, target - self.clock.seconds()))
        await self.barrier()

    async def settle(self, coro: Coroutine[Any, Any, Any] | Deferred[Any], limit: float = 40.0) -> Any:
        """Run a call-control method (or API call) to its end, advancing the
        PBX's clock a quarter second at a time while it waits."""
        d: Deferred[Any] = coro if isinstance(coro, Deferred) else Deferred.fromCoroutine(coro)
        waited = 0.0
        while True:
            await self.barrier()
            if d.called or waited >= limit:
                break
            self.clock.advance(0.25)
            waited += 0.25
        if not d.called:
            d.cancel()
            d.addErrback(lambda _: None)
            raise AssertionError(f"the call-control method did not finish within {limit} s of PBX time")
        return await d

    async def stop(self) -> None:
        await maybeDeferred(self.client.stopService)
        await maybeDeferred(self.port.stopListening)
        for dc in self.clock.getDelayedCalls():
            if dc.active():
                dc.cancel()
        if self.writer is not None:
            await self.writer.flushed()

    # -- scenarios -------------------------------------------------------------------

    async def incoming(self, agent: str = "SIP/1001", name: str = "Alice Agent", **caller: Any) -> Call:
        """A customer calls the support queue and ``agent`` answers."""
        self.sim.queue_add("support", agent, name)
        self.sim.caller_calls("5000", CUSTOMER, **caller)
        await self.advance(1.5)
        (call,) = self.tracker.calls_of_device(agent)
        assert call.connected is not None and call.answered_by == agent
        return call

    # -- what the simulated Asterisk has -----------------------------------------------

    def sim_channel(self, uniqueid: str) -> SimChannel | None:
        return next((c for c in self.sim.channels.values() if c.uniqueid == uniqueid), None)

    def sim_device(self, device: str) -> list[SimChannel]:
        return [c for c in self.sim.channels.values() if c.peer_name == device]

    def leg(self, call: Call, device: str) -> Any:
        legs = [leg for leg in call.legs.values() if leg.device == device]
        assert legs, f"{device} has no leg in the call"
        return legs[-1]

    def event_names(self) -> list[str]:
        return [name for name, _ in self.events]


async def started(**kw: Any) -> Stack:
    return await Stack(**kw).start()


@pytest_twisted.ensureDeferred
async def test_agent_hangs_up_an_incoming_call() -> None:
    s = await started()
    try:
        call = await s.incoming()
        agent_uid = s.leg(call, "SIP/1001").uniqueid
        result = await s.settle(s.control.hangup(ALICE))
        assert result is call
        assert agent_uid not in s.pbx.channels and not s.sim_device("SIP/1001")
        await s.advance(0.5)
        done = s.ended.calls[call.uniqueid]
        assert done.cause == Cause.CALLED_HUNG_UP
        assert s.leg(done, "SIP/1001").cause == Cause.CALLED_HUNG_UP
        assert s.leg(done, "SIP/carrier").cause == Cause.CALLED_HUNG_UP
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_agent_declines_a_ringing_call() -> None:
    s = await started()
    try:
        s.sim.phone("SIP/1001").set_behaviour(answer_after=None)
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        s.sim.caller_calls("5000", CUSTOMER)
        await s.advance(0.5)
        assert s.sim.phone("SIP/1001").ringing is not None
        await s.settle(s.control.hangup(ALICE))
        assert s.sim.phone("SIP/1001").ringing is None
        (call,) = s.tracker.active_calls()
        assert s.leg(call, "SIP/1001").ended is not None and call.connected is None
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_nothing_to_hang_up() -> None:
    s = await started()
    try:
        with pytest.raises(InvalidState, match="there is no call on SIP/1001"):
            await s.control.hangup(ALICE)
        with pytest.raises(InvalidState, match="there is no call on SIP/1002"):
            await s.control.hangup("SIP/1002")
    finally:
        await s.stop()
