"""UCS's AMI client, PBX model and call tracker against the simulated PBX over TCP.

The simulator runs on a ``Clock`` the test advances; the sockets run on the
real reactor.  A Ping through UCS's own AMI link is the barrier: AMI is one
ordered stream, so once its answer is back every event written before it has
been applied to the model.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock

from ucs.ami.client import AMIClient
from ucs.calls.call import Call
from ucs.calls.tracker import CallObserver, CallTracker
from ucs.pbx.link import PBXLink
from ucs.pbx.pbx import PBX
from ucs.sim import lab
from ucs.sim.server import AMIServer


class Ended(CallObserver):
    def __init__(self) -> None:
        self.calls: dict[str, Call] = {}

    def call_ended(self, call: Call) -> None:
        self.calls[call.uniqueid] = call


class Stack:
    """A simulated Asterisk on a port, and UCS's ingest path connected to it."""

    def __init__(self, filters: tuple[str, ...] = ()) -> None:
        self.clock = Clock()
        self.clock.advance(1_000)
        self.sim = lab(self.clock)
        for device in ("SIP/1001", "SIP/1002", "SIP/1003"):
            self.sim.phone(device).set_behaviour(answer_after=1.0)
        self.server = AMIServer(self.sim)
        self.port: Any = reactor.listenTCP(0, self.server, interface="127.0.0.1")
        self.portnum = self.port.getHost().port
        self.pbx = PBX(self.clock)
        self.ended = Ended()
        self.tracker = CallTracker(self.pbx, self.clock, observers=[self.ended])
        self.pbx.observers.append(self.tracker)
        self.link = PBXLink(self.pbx, filters)
        self.client = AMIClient(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.portnum),
            "ucs", "ucslab", self.link,
            clock=reactor, keepaliveInterval=None, retryPolicy=lambda attempt: 0.05,
        )

    async def start(self) -> None:
        synced = self.link.whenSynced()
        self.client.startService()
        await synced
        await self.barrier()

    async def barrier(self) -> None:
        await self.client.sendAction("Ping")

    async def advance(self, seconds: float) -> None:
        target = self.clock.seconds() + seconds
        while self.clock.seconds() + 0.25 < target:
            self.clock.advance(0.25)
        self.clock.advance(max(0.0, target - self.clock.seconds()))
        if self.client.state == "up":
            await self.barrier()

    async def stop(self) -> None:
        await maybeDeferred(self.client.stopService)
        await maybeDeferred(self.port.stopListening)
        for dc in self.clock.getDelayedCalls():
            if dc.active():
                dc.cancel()

    # what the simulated Asterisk has, and what UCS believes

    def sim_channels(self) -> set[str]:
        return {c.uniqueid for c in self.sim.channels.values() if not c.gone}

    def sim_calls(self) -> set[str]:
        return {c.linkedid for c in self.sim.channels.values() if not c.gone}

    def sim_members(self) -> set[tuple[str, str, bool, str]]:
        return {
            (q.name, m.iface, m.paused, m.reason if m.paused else "")
            for q in self.sim.queues.values() for m in q.members.values()
        }

    def ucs_members(self) -> set[tuple[str, str, bool, str]]:
        return {
            (q.name, m.interface, m.paused, m.paused_reason)
            for q in self.pbx.queues.values() for m in q.members.values()
        }

    def sim_waiting(self) -> dict[str, set[str]]:
        return {
            q.name: {e.chan.uniqueid for e in q.entries if e.connected_at is None and not e.done}
            for q in self.sim.queues.values()
        }

    def ucs_waiting(self) -> dict[str, set[str]]:
        return {name: set(q.callers) for name, q in self.pbx.queues.items()}

    def assert_in_step(self) -> None:
        assert set(self.pbx.channels) == self.sim_channels()
        assert {c.uniqueid for c in self.tracker.active_calls()} == self.sim_calls()
        assert self.ucs_members() == self.sim_members()
        waiting = self.ucs_waiting()
        for name, uids in self.sim_waiting().items():
            assert waiting.get(name, set()) == uids, name


def link_lost(link: PBXLink, timeout: float = 5.0) -> Deferred[None]:
    """Fires once the AMI client has told ``link`` the connection is down (the client
    is then no longer "up"); ask before cutting it.  Fails after ``timeout`` seconds."""
    d: Deferred[None] = Deferred()

    def disconnected(reason: Any) -> None:
        del link.disconnected  # type: ignore[method-assign]  # the class's own again
        link.disconnected(reason)
        d.callback(None)

    link.disconnected = disconnected  # type: ignore[method-assign]
    return d.addTimeout(timeout, reactor)


@pytest_twisted.ensureDeferred
async def test_model_and_tracker_follow_the_simulator() -> None:
    s = Stack()
    try:
        await s.start()
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        s.sim.queue_add("support", "SIP/1002", "Bob Agent", paused=True, reason="Lunch")
        await s.advance(0.1)
        s.assert_in_step()
        s.sim.caller_calls("5000", "420777123456", hangup_after=4)
        await s.advance(3)
        (call,) = s.tracker.active_calls()
        assert call.answered_by == "SIP/1001" and call.connected is not None
        s.assert_in_step()
        await s.advance(5)
        s.assert_in_step()
        (done,) = s.ended.calls.values()
        assert done.cause == 3 and done.queue == "support"
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_link_cut_mid_call_then_restored() -> None:
    s = Stack()
    try:
        await s.start()
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        s.sim.queue_add("support", "SIP/1002", "Bob Agent")
        await s.advance(0.1)
        long_call = s.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await s.advance(3)
        short_call = s.sim.caller_calls("5000", "420777000002", hangup_after=3)
        await s.advance(2)
        assert len(s.tracker.active_calls()) == 2
        s.assert_in_step()

        # The link goes down (and Asterisk refuses new logins for a while).
        await maybeDeferred(s.port.stopListening)
        down = link_lost(s.link)
        s.client.protocol.transport.abortConnection()
        await down
        assert s.client.state != "up"
        # Meanwhile on the PBX: the short call ends, Bob pauses, a new customer
        # starts waiting (both agents busy or paused), and another gives up.
        await s.advance(4)
        s.sim.queue_pause("SIP/1002", True, "support", "Coffee")
        waiting = s.sim.caller_calls("5000", "420777000003", hangup_after=5)
        s.sim.caller_calls("5000", "420777000004", abandon_after=1)
        await s.advance(3)
        assert short_call.gone and not long_call.gone

        # Asterisk is reachable again: UCS reconnects and resyncs.
        synced = s.link.whenSynced()
        s.port = reactor.listenTCP(s.portnum, s.server, interface="127.0.0.1")
        await synced
        await s.barrier()
        s.assert_in_step()
        # the call that ended unseen is closed with cause 0 (unknown), not kept
        gone = s.ended.calls[short_call.linkedid]
        assert gone.cause == 0 and gone.disconnected is not None
        # the customer who started waiting while we were away is known and queued
        assert waiting.uniqueid in s.pbx.queues["support"].callers
        assert s.pbx.queues["support"].members["SIP/1002"].paused_reason == "Coffee"

        # Life goes on: Bob comes back, takes the waiting customer; everyone hangs up.
        s.sim.queue_pause("SIP/1002", False, "support")
        await s.advance(10)
        taken = s.ended.calls[waiting.linkedid]
        assert taken.answered_by == "SIP/1002" and taken.cause == 3
        await s.advance(60)
        s.assert_in_step()
        assert not s.tracker.active_calls() and not s.pbx.channels
        assert s.ended.calls[long_call.linkedid].cause == 3
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_asterisk_restart_with_new_state() -> None:
    s = Stack()
    try:
        await s.start()
        s.sim.queue_add("support", "SIP/1001", "Alice Agent")
        await s.advance(0.1)
        call = s.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await s.advance(3)
        assert s.tracker.active_calls()

        synced = s.link.whenSynced()
        s.sim.restart()  # Shutdown, channels hung up, links closed, dynamic members gone
        await synced
        # Asterisk came back with new state: another tool added a member.
        s.sim.queue_add("sales", "SIP/1003", "Carol Agent")
        await s.advance(0.1)
        s.assert_in_step()
        assert not s.pbx.channels and not s.tracker.active_calls()
        assert s.ucs_members() == {("sales", "SIP/1003", False, "")}
        ended = s.ended.calls[call.linkedid]
        assert ended.cause == 4  # Asterisk hung the agent up first, as in the real capture
        assert s.link.resyncs >= 2
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_ami_filters_keep_dialplan_noise_off_the_link() -> None:
    """ami.filters: the same queue call with and without `!Event: VarSet` / `!Event: Newexten`."""
    counts = {}
    for filters in ((), ("!Event: VarSet", "!Event: Newexten", "!Event: Bogus[")):
        s = Stack(filters)
        try:
            await s.start()
            s.sim.queue_add("support", "SIP/1001", "Alice Agent")
            await s.advance(0.1)
            before = s.link.events
            s.sim.caller_calls("5000", "420777123456", hangup_after=2)
            await s.advance(6)
            counts[bool(filters)] = s.link.events - before
            (done,) = s.ended.calls.values()
            assert done.cause == 3 and done.answered_by == "SIP/1001"  # the same call either way
        finally:
            await s.stop()
    assert counts[True] < counts[False] * 0.6, counts


class Resyncs:
    """Counts the model's ``resynced`` announcements (a PBX observer)."""

    def __init__(self) -> None:
        self.n = 0

    def __getattr__(self, name: str) -> Any:
        return lambda *args: None

    def resynced(self) -> None:
        self.n += 1


@pytest_twisted.ensureDeferred
async def test_a_resync_is_announced_once_after_all_its_lists() -> None:
    """Each list is applied as it arrives, but observers (the agents' reconcile, the
    bars' ``resync``) hear of the resync once, when the last list is in."""
    stack = Stack()
    seen = Resyncs()
    stack.pbx.observers.append(seen)  # type: ignore[arg-type]
    try:
        await stack.start()
        assert stack.link.resyncs >= 1
        assert seen.n == stack.link.resyncs  # the connect's, and FullyBooted's if it came after
        before = seen.n
        await stack.link.resync()
        assert seen.n == before + 1
    finally:
        await stack.stop()
