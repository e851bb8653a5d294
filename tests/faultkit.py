"""The whole UCS server against a simulated PBX that runs on a ``Clock``.

Like :mod:`serverkit` (demo mode, the container with everything in it), but
the simulated Asterisk's time is a :class:`twisted.internet.task.Clock` the
test advances, while UCS and every socket run on the real reactor.  A fault
that lasts 60 s on the PBX (calls ending and starting while the AMI link is
down) then takes a few milliseconds of the test.

A Ping through UCS's own AMI link is the barrier: AMI is one ordered stream,
so once its answer is back every event written before it has been applied to
the model, the tracker and the agents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from serverkit import demo_config, until
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.task import Clock

from ucs.constants import AgentStatus
from ucs.server import UCSServer
from ucs.sim.lab import demo_lab
from ucs.sim.pbx import Sim
from ucs.sim.service import SimService

#: Fast reconnects, no keepalive timer, no wrap-up: the tests decide when time passes.
FAULT_SECTIONS: dict[str, dict[str, Any]] = {
    "ami": {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.2, "ping_interval": 0},
    "agents": {"acw_seconds": 0},
}


def clocked_sim(phones: int = 4) -> Sim:
    """The demo lab on a fake clock; phones answer after 1 s."""
    clock = Clock()
    clock.advance(1_700_000_000)
    sim = demo_lab(clock, phones=phones, seed=0)
    for device, line in sim.lines.items():
        if not line.trunk:
            sim.phone(device).set_behaviour(answer_after=1.0)
    return sim


class ClockedServer(UCSServer):
    """Demo mode with a given simulated PBX (its clock the test's)."""

    def __init__(self, config: Any, sim: Sim) -> None:
        self.sim = sim
        super().__init__(config, reactor, demo_pbx=SimService(port=0, sim=sim, reactor=reactor))


class Faults:
    """One UCS on a clocked simulated PBX; ``restart_ucs()`` builds a new one on the same store and PBX."""

    def __init__(self, tmp_path: Path, sim: Sim | None = None, **sections: dict[str, Any]) -> None:
        self.tmp_path = tmp_path
        self.sim = sim if sim is not None else clocked_sim()
        self.clock: Clock = self.sim.clock  # type: ignore[assignment]
        merged = {k: dict(v) for k, v in FAULT_SECTIONS.items()}
        for name, values in sections.items():
            merged[name] = {**merged.get(name, {}), **values}
        self.sections = merged
        self.server: ClockedServer | None = None

    @property
    def ucs(self) -> ClockedServer:
        assert self.server is not None
        return self.server

    async def start(self) -> ClockedServer:
        self.server = ClockedServer(demo_config(self.tmp_path, **self.sections), self.sim)
        self.server.service.startService()
        await self.server.service.whenStarted()
        link = self.server.get_pbx_link()
        if not link.resyncs:
            await link.whenSynced()
        await self.settle()
        return self.server

    async def stop(self) -> None:
        if self.server is not None and self.server.service.running:
            await self.server.service.stopService()

    async def restart_ucs(self) -> ClockedServer:
        await self.stop()
        return await self.start()

    def close_clock(self) -> None:
        for dc in self.clock.getDelayedCalls():
            if dc.active():
                dc.cancel()

    # --- time and barriers ------------------------------------------------------------

    async def barrier(self) -> None:
        await self.ucs.get_ami_client().sendAction("Ping")

    async def settle(self) -> None:
        """Every event the PBX sent so far applied, and the agents' reactions done."""
        for _ in range(3):  # a reaction (QueuePause...) makes events of its own
            if self.ucs.get_ami_client().state == "up":
                await self.barrier()
            await self.ucs.get_agents().settled()

    async def advance(self, seconds: float, settle: bool = True) -> None:
        target = self.clock.seconds() + seconds
        while self.clock.seconds() + 0.25 < target:
            self.clock.advance(0.25)
        self.clock.advance(max(0.0, target - self.clock.seconds()))
        if settle and self.ucs.get_ami_client().state == "up":
            await self.settle()

    # --- the AMI link -----------------------------------------------------------------

    async def cut_link(self) -> None:
        """Asterisk unreachable: the listening port closed, the connection aborted."""
        svc = self.ucs.get_demo_pbx()
        await maybeDeferred(svc.stop_listening)
        self.ucs.get_ami_client().protocol.transport.abortConnection()
        await until(lambda: self.ucs.get_ami_client().state != "up")

    async def restore_link(self) -> None:
        link = self.ucs.get_pbx_link()
        synced = link.whenSynced()
        self.ucs.get_demo_pbx().start_listening()
        await synced
        await self.settle()

    # --- what the simulated Asterisk has, and what UCS believes -----------------------

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
        pbx = self.ucs.get_pbx()
        return {
            (q.name, m.interface, m.paused, m.paused_reason)
            for q in pbx.queues.values() for m in q.members.values()
        }

    def expected_members(self) -> set[tuple[str, str, bool, str]]:
        """Each logged-in agent in both demo queues, paused as its status says."""
        out = set()
        for agent in self.ucs.get_agents().all():
            paused = agent.status != AgentStatus.READY
            reason = {AgentStatus.AUX: agent.reason, AgentStatus.ACW: "ACW"}.get(agent.status, "")
            for q in ("support", "sales"):
                out.add((q, agent.device, paused, reason))
        return out

    def assert_in_step(self) -> None:
        pbx, tracker = self.ucs.get_pbx(), self.ucs.get_call_tracker()
        assert set(pbx.channels) == self.sim_channels()
        assert {c.uniqueid for c in tracker.active_calls()} == self.sim_calls()
        assert self.ucs_members() == self.sim_members()
        assert self.sim_members() == self.expected_members()
        waiting = {name: set(q.callers) for name, q in pbx.queues.items()}
        for q in self.sim.queues.values():
            uids = {e.chan.uniqueid for e in q.entries if e.connected_at is None and not e.done}
            assert waiting.get(q.name, set()) == uids, q.name


def wait_event(bus: Any, name: str, test: Any = None, timeout: float = 5.0) -> Deferred[tuple[Any, dict[str, Any]]]:
    """The next ``name`` event on the bus (whose ``test(subject, args)`` holds)."""
    d: Deferred[tuple[Any, dict[str, Any]]] = Deferred()

    def heard(subject: Any, args: dict[str, Any]) -> None:
        if not d.called and (test is None or test(subject, args)):
            bus.unsubscribe(name, heard)
            d.callback((subject, args))

    bus.subscribe(name, heard)
    d.addTimeout(timeout, reactor)
    return d
