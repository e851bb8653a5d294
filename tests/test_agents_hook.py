"""The agent state change hook exactly as seeds 000/001 describe it, run in a
thread with a time budget, against the simulated Asterisk over TCP."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_twisted
from serverkit import until
from test_agents_harness import close, later, sqlite_url, stack_on
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from ucs.constants import AGENT_AUX, AGENT_OFFLINE, AGENT_READY, AgentStatus
from ucs.error import ProcessingError
from ucs.events import EVENT_AGENT_STATUS

OFFLINE, READY, AUX = AgentStatus.OFFLINE, AgentStatus.READY, AgentStatus.AUX


class StatusHook:
    """Seed 001's example plugin, with its clock and lunch rules made testable."""

    def __init__(self, agents: Any, hour: int) -> None:
        self.agents = agents
        self.hour = hour
        self.seen: list[tuple[str, AgentStatus, str, str]] = []
        self.threads: set[str] = set()
        agents.add_change_status_hook(self.hook)

    def stop(self) -> None:
        self.agents.remove_change_status_hook()

    def hook(self, agent: Any, new_status: AgentStatus, new_reason: str) -> tuple[Any, str]:
        self.threads.add(threading.current_thread().name)
        self.seen.append((agent["status"].name, new_status, new_reason, agent.username))
        if new_status == AGENT_AUX and new_reason == "Lunch":
            if self.hour < 11:
                return None, "Na oběd je příliš brzy"
            if self.hour > 17:
                raise ProcessingError("Už je čas na večeři")
        if new_status == AGENT_AUX and new_reason == "Coffee":
            return None, ""
        if new_status == AGENT_AUX and new_reason == "Meeting":
            return 1 / 0  # type: ignore[return-value]
        if agent.status == AGENT_OFFLINE and new_status == AGENT_READY:
            return AGENT_AUX, "Seznámení se z provozními pokyny"  # not one of the directory's AUX reasons
        return new_status, new_reason


@pytest_twisted.ensureDeferred
async def test_hook_changes_blocks_and_fails_as_the_seed_says(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        logged: list[dict[str, Any]] = []
        agents.hook.log = Logger(observer=logged.append)
        plugin = StatusHook(agents, hour=9)
        uid = s.user("alice").id

        # OFFLINE → READY at login becomes AUX with the plugin's own reason (the hook changes it)
        training = "Seznámení se z provozními pokyny"
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        assert (alice.status, alice.reason) == (AUX, training)
        assert s.members("SIP/1001") == {("support", True, training), ("sales", True, training)}
        assert plugin.seen[0] == ("OFFLINE", READY, "", "alice")
        assert all(name != "MainThread" for name in plugin.threads)  # never on the reactor thread

        # blocked with a reason; blocked by ProcessingError; blocked with no reason
        with pytest.raises(ProcessingError, match="^Na oběd je příliš brzy$"):
            await agents.change_status(uid, "AUX", "Lunch")
        plugin.hour = 18
        with pytest.raises(ProcessingError, match="^Už je čas na večeři$"):
            await agents.change_status(uid, "AUX", "Lunch")
        with pytest.raises(ProcessingError, match="^Blocked by hook$"):
            await agents.change_status(uid, "AUX", "Coffee")
        assert (alice.status, alice.reason) == (AUX, training)
        assert s.members("SIP/1001") == {("support", True, training), ("sales", True, training)}

        # left alone: the requested change goes through
        plugin.hour = 12
        await agents.change_status(uid, "AUX", "Lunch")
        assert (alice.status, alice.reason) == (AUX, "Lunch")
        await agents.change_status(uid, "READY")
        assert alice.status == READY

        # another exception: the original change goes through and the traceback is logged
        await agents.change_status(uid, "AUX", "Meeting")
        assert (alice.status, alice.reason) == (AUX, "Meeting")
        assert s.members("SIP/1001") == {("support", True, "Meeting"), ("sales", True, "Meeting")}
        failures = [e for e in logged if e.get("log_failure") is not None]
        assert len(failures) == 1 and failures[0]["log_failure"].check(ZeroDivisionError)

        # one hook only
        with pytest.raises(ProcessingError, match="already registered"):
            agents.add_change_status_hook(lambda a, st, r: (st, r))
        plugin.stop()
        agents.add_change_status_hook(lambda a, st, r: (st, r))
        agents.remove_change_status_hook()

        # blocked changes were never published
        steps = [(a["status"].name, a["reason"]) for a in s.named(EVENT_AGENT_STATUS)]
        assert steps == [("AUX", training), ("AUX", "Lunch"), ("READY", ""), ("AUX", "Meeting")]
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_a_slow_hook_does_not_block_the_reactor_and_has_a_budget(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start(hook_timeout=3.0)
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        release = threading.Event()
        started = threading.Event()
        calls: list[str] = []

        def slow(agent: Any, status: AgentStatus, reason: str) -> tuple[AgentStatus, str]:
            calls.append(reason)
            started.set()
            release.wait(10)
            return AGENT_AUX, "Training"  # too late: ignored

        agents.add_change_status_hook(slow)
        change = ensureDeferred(agents.change_status(alice.id, "AUX", "Lunch"))
        await until(started.is_set, timeout=10)
        await s.settle()  # the reactor answers pings while the hook is stuck in its thread
        assert not change.called and calls == ["Lunch"]
        s.clock.advance(3.0)  # the hook's budget is over: the request goes ahead as asked
        await change
        assert (alice.status, alice.reason) == (AUX, "Lunch")
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
        release.set()
        pool = reactor.getThreadPool()  # type: ignore[attr-defined]
        await until(lambda: not pool.working, timeout=10)  # the hook's late answer is back...
        await later(0)  # ...and delivered by callFromThread on the next turn
        await s.settle()
        assert (alice.status, alice.reason) == (AUX, "Lunch")
    finally:
        await close(s)
