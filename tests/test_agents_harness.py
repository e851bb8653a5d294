"""The agents' test stack: the simulated Asterisk over TCP and UCS's real parts.

The simulator, the PBX model, the tracker and the agents run on one ``Clock``
the test advances; the sockets run on the real reactor.  :meth:`AgentStack.settle`
is the barrier: a Ping through UCS's AMI link (AMI is one ordered stream, so
every event written before it has been applied), then the agents' background
work (wrap-up, following the phone, reconciliation), again until nothing is
left.  :meth:`AgentStack.advance` moves the clock from one scheduled call to
the next and settles after each, so every event is applied at the simulated
instant it happened and the statistics come out exact.

The other test modules import this one (``from test_agents_harness import …``).
"""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest_twisted
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock

from ucs.agents import Agents
from ucs.ami.client import AMIClient
from ucs.bus import EventBus
from ucs.calls.tracker import CallTracker
from ucs.constants import AgentStatus
from ucs.directory.directory import Directory
from ucs.directory.model import Line, User
from ucs.pbx.link import PBXLink
from ucs.pbx.pbx import PBX
from ucs.sim import lab
from ucs.sim.server import AMIServer
from ucs.sim.testing import AMITestClient
from ucs.store import open_store

PRAGUE = ZoneInfo("Europe/Prague")


def prague(*args: int) -> float:
    """A timestamp from a Prague wall-clock date and time."""
    return datetime.datetime(*args, tzinfo=PRAGUE).timestamp()  # type: ignore[misc]


class AgentStack:
    """A simulated Asterisk (the capture lab) on a port; UCS's ingest path,
    directory and agents connected to it."""

    def __init__(self, store: Any, *, start: float | None = None, clock: Clock | None = None) -> None:
        self.store = store
        if clock is None:
            clock = Clock()
            clock.advance(start if start is not None else prague(2025, 3, 10, 7, 0, 0))
        self.clock = clock
        self.sim = lab(self.clock)
        self.server = AMIServer(self.sim)
        self.port: Any = reactor.listenTCP(0, self.server, interface="127.0.0.1")
        self.portnum = self.port.getHost().port
        self.bus = EventBus()
        self.events: list[tuple[str, Any, dict[str, Any]]] = []
        self.bus.subscribe_all(lambda name, subject, args: self.events.append((name, subject, args)))
        self.others: list[AMITestClient] = []
        self.agents: Agents | None = None
        self._connect()

    def _connect(self) -> None:
        self.pbx = PBX(self.clock)
        self.tracker = CallTracker(self.pbx, self.clock)
        self.pbx.observers.append(self.tracker)
        self.link = PBXLink(self.pbx)
        self.client = AMIClient(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.portnum),
            "ucs", "ucslab", self.link,
            clock=reactor, keepaliveInterval=None, retryPolicy=lambda attempt: 0.05,
        )

    # -- building ------------------------------------------------------------------------

    async def directory_with_lab(self) -> Directory:
        """Queues support (1) and sales (2); lines SIP/1001..1004 (ids 1..4); users
        alice (support, sales with priority 2), bob (support), carol (support,
        sales), dave (no queue); AUX reasons Lunch, Coffee, Meeting, Training."""
        d = self.directory = Directory(self.store, self.bus)
        await d.load()
        support = await d.add("queues", {"name": "Support", "asterisk_name": "support"})
        sales = await d.add("queues", {"name": "Sales", "asterisk_name": "sales"})
        for n in (1001, 1002, 1003, 1004):
            await d.add("lines", {"device": f"SIP/{n}", "name": f"Desk {n}"})
        await d.add("users", {"username": "alice", "firstname": "Alice", "lastname": "Agent",
                              "queues": {str(support.id): {}, str(sales.id): {"priorities": 2}}})
        await d.add("users", {"username": "bob", "displayname": "Bob Agent", "queues": {str(support.id): {}}})
        await d.add("users", {"username": "carol", "displayname": "Carol Agent",
                              "queues": {str(support.id): {}, str(sales.id): {}}})
        await d.add("users", {"username": "dave", "displayname": "Dave Agent"})
        await d.add("users", {"username": "sue", "displayname": "Sue Supervisor", "supervisor": True})
        for name in ("Lunch", "Coffee", "Meeting", "Training"):
            await d.add("auxreasons", {"name": name})
        return d

    async def load_directory(self) -> Directory:
        self.directory = Directory(self.store, self.bus)
        await self.directory.load()
        return self.directory

    def make_agents(self, **options: Any) -> Agents:
        options.setdefault("acw_seconds", 10.0)
        agents = Agents(self.directory, self.client, self.pbx, self.tracker, self.bus, self.store, self.clock,
                        reactor=reactor, **options)
        self.pbx.observers.append(agents)
        self.tracker.observers.append(agents)
        self.agents = agents
        return agents

    async def start(self, **options: Any) -> Agents:
        """Connect UCS's AMI link, then start the agents service."""
        agents = self.make_agents(**options)
        synced = self.link.whenSynced()
        self.client.startService()
        await synced
        await agents.start()
        await self.settle()
        return agents

    async def restart_ucs(self, **options: Any) -> Agents:
        """UCS stops (agents saved, AMI link closed) and starts again: a new
        model, tracker, directory and agents service on the same store."""
        assert self.agents is not None
        await self.agents.stop()
        await maybeDeferred(self.client.stopService)
        self._connect()
        await self.load_directory()
        return await self.start(**options)

    # -- time and barriers --------------------------------------------------------------

    async def settle(self) -> None:
        for _ in range(20):
            await self.client.sendAction("Ping")
            agents = self.agents
            if agents is None or not agents._tasks:
                return
            await agents.settled()
        raise AssertionError("the agents service never settled")

    async def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``, stopping at every scheduled call."""
        clock = self.clock
        target = clock.seconds() + seconds
        if self.client.state == "up":
            await self.settle()  # what the test did just now (a call placed) is applied at this instant
        for _ in range(1_000_000):
            now = clock.seconds()
            times = [dc.getTime() for dc in clock.getDelayedCalls() if dc.active()]
            if any(t <= now for t in times):
                clock.advance(0)
            elif now >= target:
                return
            else:
                clock.advance(min([t for t in times if t <= target] + [target]) - now)
            if self.client.state == "up":
                await self.settle()
        raise AssertionError("advance never reached its target")

    async def advance_to(self, when: float) -> None:
        await self.advance(when - self.clock.seconds())

    async def stop(self) -> None:
        if self.agents is not None and self.agents.running:
            await self.agents.stop()
        for c in self.others:
            if c.transport is not None and c.transport.connected:
                c.transport.loseConnection()
                await c.closed
        await maybeDeferred(self.client.stopService)
        await maybeDeferred(self.port.stopListening)
        for dc in self.clock.getDelayedCalls():
            if dc.active():
                dc.cancel()

    # -- the other tool -------------------------------------------------------------------

    async def other_client(self) -> AMITestClient:
        """Another AMI client (a phone's pause key, a supervisor's tool) logged in to the sim."""
        cc = protocol.ClientCreator(reactor, AMITestClient)
        c: AMITestClient = await cc.connectTCP("127.0.0.1", self.portnum)
        self.others.append(c)
        await c.login()
        return c

    # -- reading ---------------------------------------------------------------------------

    def user(self, username: str) -> User:
        u = self.directory.user_by_username(username)
        assert u is not None
        return u

    def line(self, device: str) -> Line:
        ln = self.directory.line_by_device(device)
        assert ln is not None
        return ln

    def sim_members(self, device: str | None = None) -> set[tuple[str, str, bool, str]]:
        return {
            (q.name, m.iface, m.paused, m.reason if m.paused else "")
            for q in self.sim.queues.values() for m in q.members.values()
            if device is None or m.iface == device
        }

    def ucs_members(self, device: str | None = None) -> set[tuple[str, str, bool, str]]:
        return {
            (q.name, m.interface, m.paused, m.paused_reason)
            for q in self.pbx.queues.values() for m in q.members.values()
            if device is None or m.interface == device
        }

    def members(self, device: str) -> set[tuple[str, bool, str]]:
        """The phone's memberships as the simulated Asterisk has them, checked
        to be what UCS's model believes too."""
        sim = self.sim_members(device)
        assert sim == self.ucs_members(device), (sim, self.ucs_members(device))
        return {(q, paused, reason) for q, _, paused, reason in sim}

    def status(self, username: str) -> tuple[AgentStatus, str] | None:
        assert self.agents is not None
        agent = self.agents.get(self.user(username).id)
        return None if agent is None else (agent.status, agent.reason)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [args for n, _, args in self.events if n == name]


async def stack_on(store_url: str, **kw: Any) -> AgentStack:
    store = await open_store(store_url, reactor)
    s = AgentStack(store, **kw)
    await s.directory_with_lab()
    return s


async def close(s: AgentStack) -> None:
    try:
        await s.stop()
    finally:
        await s.store.close()


def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path / 'ucs.db'}"


async def later(seconds: float) -> None:
    """Real time passing (only to show the reactor stays free while a hook runs)."""
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d


@pytest_twisted.ensureDeferred
async def test_the_stack_logs_an_agent_in(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        assert alice.status == AgentStatus.READY
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}
    finally:
        await close(s)
