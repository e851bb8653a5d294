"""Wrap-up (ACW) never lets the next queue caller ring the agent (issue 13, point 6).

app_queue offers a waiting caller to a member the moment its device is free
unless the member is paused, and the simulator does the same (in the same
simulated instant as the hangup), so a pause sent when UCS hears of the
hangup comes too late.  UCS pauses the member while the call is still up;
these tests check what the agent and the caller would notice: the phone does
not ring during ACW, the bar never shows a ringing call while in ACW, the
status is READY while talking, and the next caller is offered when ACW ends.

The whole-server test runs UCS and the simulator on a ``Clock`` (sockets on
the real reactor, see :class:`ClockedReactor`); the others use the agents'
stack of ``test_agents_harness``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from serverkit import demo_config
from test_agents_harness import AgentStack, close, prague, sqlite_url, stack_on
from test_web_api import Client, ready_agent
from twisted.internet import reactor
from twisted.internet.task import Clock

from ucs.agents import Agent
from ucs.agents.transitions import Target, target
from ucs.constants import AgentStatus
from ucs.events import EVENT_AGENT_STATUS
from ucs.server import UCSServer
from ucs.sim import lab
from ucs.sim.pbx import Sim
from ucs.sim.wire import Event

OFFLINE, READY, AUX, ACW = AgentStatus.OFFLINE, AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW
PAUSED_ACW = {("support", True, "ACW"), ("sales", True, "ACW")}
FREE = {("support", False, ""), ("sales", False, "")}


class ClockedReactor:
    """The real reactor for sockets and threads, a ``Clock`` for time: the whole
    server (and the simulator it embeds) schedules on the clock the test moves."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def callLater(self, delay: float, fn: Any, *args: Any, **kw: Any) -> Any:
        return self.clock.callLater(delay, fn, *args, **kw)

    def seconds(self) -> float:
        return self.clock.seconds()

    def getDelayedCalls(self) -> Any:
        return self.clock.getDelayedCalls()

    def __getattr__(self, name: str) -> Any:
        return getattr(reactor, name)


class Whole:
    """The whole server in demo mode on a clock, and what the simulated Asterisk sent."""

    def __init__(self, server: UCSServer, clock: Clock) -> None:
        self.server = server
        self.clock = clock
        self.sim: Sim = server.get_demo_pbx().sim
        self.sent: list[tuple[float, str, dict[str, str]]] = []
        self.sim.subscribe(self._heard)

    def _heard(self, event: Event) -> None:
        if event.name in ("AgentCalled", "Newchannel", "Hangup"):
            self.sent.append((self.clock.seconds(), event.name, event.message()))

    def rang(self, device: str) -> list[float]:
        """When the simulated Asterisk offered a queue caller to ``device``."""
        return [t for t, name, e in self.sent if name == "AgentCalled" and e.get("Interface") == device]

    async def settle(self) -> None:
        """Everything Asterisk sent so far is applied, the agents' work done."""
        agents = self.server.get_agents()
        for _ in range(20):
            await self.server.get_ami_client().sendAction("Ping")
            if not agents._tasks:
                return
            await agents.settled()
        raise AssertionError("the agents service never settled")

    async def advance(self, seconds: float) -> None:
        """Move the clock on, stopping at each scheduled call and settling after it."""
        target = self.clock.seconds() + seconds
        await self.settle()
        while True:
            now = self.clock.seconds()
            due = [dc.getTime() for dc in self.clock.getDelayedCalls() if dc.active()]
            if now >= target and not any(t <= now for t in due):
                return
            self.clock.advance(max(0.0, min([t for t in due if t <= target] + [target]) - now))
            await self.settle()


async def whole_server(tmp_path: Path, **sections: dict[str, Any]) -> Whole:
    clock = Clock()
    clock.advance(prague(2025, 3, 10, 9, 0, 0))
    server = UCSServer(demo_config(tmp_path, **sections), ClockedReactor(clock))
    server.service.startService()
    await server.service.whenStarted()
    if not server.get_pbx_link().resyncs:
        await server.get_pbx_link().whenSynced()
    return Whole(server, clock)


def bar_seen(bar: Client) -> list[tuple[str, str]]:
    """The bar's agent statuses and call events, in the order it got them."""
    out = []
    for m in bar.inbox:
        if m["event"] == "agent.status":
            out.append(("status", m["data"]["status"]))
        elif m["event"].startswith("call."):
            out.append(("call", m["event"]))
    return out


@pytest_twisted.ensureDeferred
async def test_the_next_caller_waits_for_the_end_of_acw(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"acw_seconds": 10})
    try:
        bar = await ready_agent(w.server, 1)
        agent = w.server.get_agents().all()[0]
        device = agent.device
        w.sim.phone(device).set_behaviour(answer_after=2)
        start = w.clock.seconds()
        w.sim.caller_calls("5000", "420777000001", hangup_after=20)  # answered at +2, hung up at +22
        w.sim.caller_calls("5000", "420777000002", hangup_after=20)
        await w.advance(3)
        assert w.rang(device) == [start] and agent.busy
        await w.advance(18)
        assert agent.status == READY  # talking: the bar does not show ACW

        await w.advance(1)  # the first caller hangs up; the second is still waiting
        assert agent.status == ACW
        assert w.rang(device) == [start], "the second caller rang the agent as the first call ended, in ACW"
        assert not agent.busy and w.sim.queues["support"].entries
        await w.advance(9.5)
        assert w.rang(device) == [start], "the second caller rang the agent during ACW"
        assert agent.status == ACW and not w.sim.phone(device).channels
        await bar.call("session.info")  # every push so far has reached the bar
        seen = bar_seen(bar)
        in_acw = seen[seen.index(("status", "ACW")):]
        assert [s for s in seen if s[0] == "status"] == [("status", "ACW")]
        assert not [s for s in in_acw if s[0] == "call" and s[1] != "call.hangup"], in_acw

        await w.advance(0.5)  # ACW is over: the second caller is offered at once
        assert agent.status == READY
        assert w.rang(device) == [start, start + 32]
        await bar.call("session.info")
        after = bar_seen(bar)[len(seen):]
        # the same instant: the caller offered by the first queue unpaused may come
        # just before READY (counted once every queue confirmed)
        assert ("status", "READY") in after and ("call", "call.ringing") in after
        bar.close()
    finally:
        await w.server.service.stopService()


# -- the agents service on the agents' stack ------------------------------------------------


def test_a_held_agent_is_paused_acw_only_where_it_would_take_calls() -> None:
    assert target(READY, "", False, held=True) == Target(True, True, "ACW")
    assert target(READY, "", False) == Target(True)
    assert target(AUX, "Lunch", False, held=True) == Target(True, True, "Lunch")
    assert target(READY, "", True, held=True) == Target(True, True, "suspended")
    assert target(OFFLINE, "", False, held=True) == Target(False)


def statuses(s: AgentStack) -> list[tuple[str, str]]:
    return [(a["status"].name, a["reason"]) for a in s.named(EVENT_AGENT_STATUS)]


async def alice_ready(s: AgentStack, acw_seconds: float = 10) -> Agent:
    agents = await s.start(acw_seconds=acw_seconds)
    alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
    await s.settle()
    s.sim.phone("SIP/1001").set_behaviour(answer_after=2)
    s.events.clear()
    return alice


@pytest_twisted.ensureDeferred
async def test_paused_while_talking_not_while_ringing_and_kept_through_requests_and_resyncs(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        alice = await alice_ready(s)
        agents = s.agents
        assert agents is not None

        # rang and never answered: no pause, no wrap-up
        s.sim.phone("SIP/1001").set_behaviour(answer_after=None)
        s.sim.caller_calls("5000", "420777000001", abandon_after=6)
        await s.advance(1)
        assert s.sim.phone("SIP/1001").ringing is not None and s.members("SIP/1001") == FREE
        await s.advance(10)
        assert (alice.status, s.members("SIP/1001"), statuses(s)) == (READY, FREE, [])

        # answered: paused "ACW" at once, the status still READY while she talks
        s.sim.phone("SIP/1001").set_behaviour(answer_after=2)
        s.sim.caller_calls("5000", "420777000002", hangup_after=20)
        await s.advance(3)
        assert (alice.status, s.members("SIP/1001")) == (READY, PAUSED_ACW)
        # READY clicked again, a resync of the AMI link: the pause stays, nothing is followed
        await agents.change_status(alice.id, "READY")
        await s.link.resync()
        await s.settle()
        assert (alice.status, s.members("SIP/1001"), statuses(s)) == (READY, PAUSED_ACW, [])

        await s.advance(19)  # the customer hangs up at +22: ACW with the pause already there
        assert (alice.status, s.members("SIP/1001")) == (ACW, PAUSED_ACW)
        await s.advance(10)
        assert (alice.status, s.members("SIP/1001")) == (READY, FREE)
        assert statuses(s) == [("ACW", ""), ("READY", "")]

        # a pause with reason ACW made outside UCS, with no call, is still followed
        other = await s.other_client()
        await other.action("QueuePause", Interface="SIP/1001", Paused="true", Reason="ACW")
        await s.settle()
        assert alice.status == ACW
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_aux_offline_during_the_call_own_calls_and_acw_off(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        alice = await alice_ready(s)
        agents = s.agents
        assert agents is not None

        # AUX during the call: paused with its reason, wrap-up after it, then AUX again
        s.sim.caller_calls("5000", "420777000001", hangup_after=10)
        await s.advance(3)
        await agents.change_status(alice.id, "AUX", "Meeting")
        assert s.members("SIP/1001") == {("support", True, "Meeting"), ("sales", True, "Meeting")}
        await s.advance(10)
        assert (alice.status, s.members("SIP/1001")) == (ACW, PAUSED_ACW)
        await s.advance(10)
        assert (alice.status, alice.reason) == (AUX, "Meeting")

        # OFFLINE during the call: out of the queues, no wrap-up, and READY later is not left paused
        await agents.change_status(alice.id, "READY")
        s.sim.caller_calls("5000", "420777000002", hangup_after=10)
        await s.advance(3)
        await agents.change_status(alice.id, "OFFLINE")
        await s.advance(15)
        assert (alice.status, s.members("SIP/1001")) == (OFFLINE, set())
        await agents.change_status(alice.id, "READY")
        assert s.members("SIP/1001") == FREE and not alice.held

        # her own call (not a queue call): no pause, no wrap-up, as before
        s.events.clear()
        s.sim.phone("SIP/1002").set_behaviour(answer_after=1, hangup_after=5)
        s.sim.phone("SIP/1001").dial("1002")
        await s.advance(3)
        assert alice.busy and s.members("SIP/1001") == FREE
        await s.advance(10)
        assert (alice.status, s.members("SIP/1001"), statuses(s)) == (READY, FREE, [])

        # wrap-up off: no pause during a queue call, none after
        agents.acw_seconds = 0
        s.sim.caller_calls("5000", "420777000003", hangup_after=10)
        await s.advance(3)
        assert alice.busy and s.members("SIP/1001") == FREE
        await s.advance(15)
        assert (alice.status, s.members("SIP/1001"), statuses(s)) == (READY, FREE, [])
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_a_transfer_away_starts_acw_and_the_next_caller_waits(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        alice = await alice_ready(s)
        s.sim.phone("SIP/1002").set_behaviour(answer_after=1)  # not an agent: a colleague's desk
        s.sim.caller_calls("5000", "420777000001")
        s.sim.caller_calls("5000", "420777000002")
        await s.advance(3)
        (talking,) = s.sim.phone("SIP/1001").channels
        other = await s.other_client()  # the bar's transfer, as UCS's call control sends it
        await other.action("BlindTransfer", Channel=talking.name, Exten="1002", Context="internal")
        await s.advance(1)  # her leg ended at the transfer, at +3: ACW until +13
        assert (alice.status, s.members("SIP/1001")) == (ACW, PAUSED_ACW)
        assert not s.sim.phone("SIP/1001").channels and s.sim.queues["support"].entries
        await s.advance(8.5)
        assert not s.sim.phone("SIP/1001").channels and alice.status == ACW
        await s.advance(0.5)
        assert alice.status == READY and s.sim.phone("SIP/1001").ringing is not None
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_ucs_restarts_while_the_pause_is_in_place(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        await alice_ready(s)
        s.sim.caller_calls("5000", "420777000001", hangup_after=20)
        await s.advance(3)

        # back during the call: READY, still paused, not taken for a pause made outside UCS
        agents = await s.restart_ucs(acw_seconds=10)
        (alice,) = agents.all()
        assert (alice.status, s.members("SIP/1001"), statuses(s)) == (READY, PAUSED_ACW, [])
        await s.advance(20)
        assert (alice.status, s.members("SIP/1001")) == (ACW, PAUSED_ACW)
        await s.advance(10)
        assert (alice.status, s.members("SIP/1001")) == (READY, FREE)

        # away while the call ends: the wrap-up starts when UCS is back, then READY
        s.sim.caller_calls("5000", "420777000002", hangup_after=5)
        await s.advance(3)
        assert s.members("SIP/1001") == PAUSED_ACW
        assert s.agents is not None
        await s.agents.stop()
        await s.client.stopService()
        await s.advance(10)
        assert s.sim_members("SIP/1001") == {("support", "SIP/1001", True, "ACW"), ("sales", "SIP/1001", True, "ACW")}
        s._connect()
        await s.load_directory()
        agents = await s.start(acw_seconds=10)
        (alice,) = agents.all()
        assert (alice.status, s.members("SIP/1001")) == (ACW, PAUSED_ACW)
        await s.advance(10)
        assert (alice.status, s.members("SIP/1001"), alice.held) == (READY, FREE, set())
    finally:
        await close(s)


# -- the simulator offers callers as app_queue does ------------------------------------------


def test_the_simulator_offers_the_next_caller_the_instant_the_member_is_free() -> None:
    clock = Clock()
    sim = lab(clock)
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.phone("SIP/1001").set_behaviour(answer_after=2)
    offered: list[float] = []
    sim.subscribe(lambda e: offered.append(clock.seconds()) if e.name == "AgentCalled" else None)
    sim.caller_calls("5000", "420777000001", hangup_after=10)
    sim.caller_calls("5000", "420777000002", hangup_after=10)
    for _ in range(12):  # second by second, as the simulator is driven: the first caller hangs up at 12
        clock.advance(1)
    # offered at 0 and, in the very step the first call ended, to the second caller
    assert offered == [0.0, 12.0] and sim.phone("SIP/1001").ringing is not None

    # a member paused before its call ends is not offered; unpaused, it is at once, and a
    # call ended from outside the clock (an AMI Hangup, a test) offers the next caller at once too
    sim.queue_pause("SIP/1001", True, reason="ACW")
    sim.caller_calls("5000", "420777000003", hangup_after=3)
    sim.caller_calls("5000", "420777000004")
    for _ in range(12):  # the second call ends at 24
        clock.advance(1)
    assert offered == [0.0, 12.0] and not sim.phone("SIP/1001").channels
    sim.queue_pause("SIP/1001", False)
    assert offered == [0.0, 12.0, 24.0]
    for _ in range(3):  # answered at 26
        clock.advance(1)
    sim.phone("SIP/1001").hangup()
    assert offered == [0.0, 12.0, 24.0, 27.0] and sim.phone("SIP/1001").ringing is not None
