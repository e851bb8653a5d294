"""Waiting-caller counts are paced by the size of the group of agents that gets
them (``[web] waiting_rate``): a queue of many agents gets fewer counts a second."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from serverkit import start_demo
from test_web_api import ready_agent, settle
from twisted.internet import reactor


@pytest_twisted.ensureDeferred
async def test_a_group_gets_a_new_count_at_most_every_size_over_rate_seconds(tmp_path: Path) -> None:
    # Two agents in the same queues at 2 messages a second: a count a second at most.
    server = await start_demo(tmp_path, web={"waiting_rate": 2, "coalesce_delay": 0.05})
    try:
        sim = server.get_demo_pbx().sim
        a = await ready_agent(server, 1)
        b = await ready_agent(server, 2)
        for c in (a, b):  # no READY agent takes the callers: they wait in the queue
            await c.call("agent.changeStatus", ["AUX", "Meeting"])
        await settle(server, a, b)  # the counts of the logins sent, and the group's pacing over
        for c in (a, b):
            c.inbox.clear()

        sim.caller_calls("5000", "420777120001")
        first = await a.event("waitingCallers")
        t1 = reactor.seconds()  # type: ignore[attr-defined]
        assert first["data"] == {"waitingCallers": 1}
        sim.caller_calls("5000", "420777120002")
        second = await a.event("waitingCallers", timeout=5)
        t2 = reactor.seconds()  # type: ignore[attr-defined]
        assert second["data"] == {"waitingCallers": 2}
        assert t2 - t1 >= 0.8, t2 - t1  # held back for the group's turn (2 agents / 2 a second)
        # b got the same counts, and nothing else came meanwhile.
        assert [(await b.event("waitingCallers"))["data"]["waitingCallers"] for _ in range(2)] == [1, 2]
        assert a.events().count("waitingCallers") == 0 and b.events().count("waitingCallers") == 0
        a.close()
        b.close()
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_counts_handed_out_a_few_per_reactor_turn_reach_everyone(tmp_path: Path, monkeypatch: Any) -> None:
    from ucs.web import pacing

    monkeypatch.setattr(pacing, "SENDS_PER_TURN", 1)  # one connection a turn: the rest follow in later turns
    server = await start_demo(tmp_path, web={"coalesce_delay": 0.05})
    try:
        sim = server.get_demo_pbx().sim
        bars = [await ready_agent(server, n) for n in (1, 2, 3)]
        for c in bars:
            await c.call("agent.changeStatus", ["AUX", "Meeting"])
        await settle(server, *bars)
        for c in bars:
            c.inbox.clear()
        for i in range(3):
            sim.caller_calls("5000", f"42077713000{i}")
        for c in bars:  # each gets counts up to 3 (the callers may be seen over more than one flush)
            counts = [(await c.event("waitingCallers"))["data"]["waitingCallers"]]
            while counts[-1] < 3:
                counts.append((await c.event("waitingCallers"))["data"]["waitingCallers"])
            assert counts == sorted(set(counts)) and counts[-1] == 3
        for c in bars:
            c.close()
    finally:
        await server.service.stopService()
