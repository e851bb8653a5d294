"""A queue priority changed while the agent works reaches Asterisk (issue 19).

The whole server in demo mode, real agent bars and the administrator's socket
over WebSocket; what Asterisk (the simulator) holds is asked over AMI on a real
TCP socket: ``QueueStatus`` on UCS's own link, and another AMI client watches the
member events Asterisk sends (a ``QueueMemberPenalty`` is the trace of every
``QueuePenalty``, even one that changes nothing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from serverkit import start_demo
from test_admin_live import admin_bar, uid
from test_web_api import ready_agent, settle
from twisted.internet import protocol, reactor
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from ucs.server import UCSServer
from ucs.sim.testing import AMITestClient


async def penalties(server: UCSServer, device: str) -> dict[str, int]:
    """Asterisk's Penalty of ``device`` in each queue it is in: QueueStatus over the AMI link."""
    result = await server.get_ami_client().sendAction("QueueStatus", {})
    return {e["Queue"]: int(e["Penalty"]) for e in result.events
            if e.get("Event") == "QueueMember" and (e.get("StateInterface") or e.get("Location")) == device}


async def watcher(server: UCSServer) -> AMITestClient:
    """Another AMI client of the simulated Asterisk, receiving its agent events."""
    host, port = server.get_demo_pbx().address()
    client: AMITestClient = await protocol.ClientCreator(reactor, AMITestClient).connectTCP(host, port)
    username, secret = server.get_demo_pbx().credentials
    await client.login(username, secret, events="agent")
    return client


def member_events(watch: AMITestClient, device: str) -> list[tuple[str, str, str]]:
    """(event, queue, penalty) of the member events about ``device`` seen since the last clear."""
    return [(m["Event"], m["Queue"], m.get("Penalty", "")) for m in watch.events()
            if m["Event"].startswith("QueueMember") and m.get("Interface") == device]


def queue_id(server: UCSServer, name: str) -> int:
    q = server.get_directory().queue_by_asterisk_name(name)
    assert q is not None
    return int(q.id)


def members_of(server: UCSServer, qid: int, **changed: int) -> list[dict[str, Any]]:
    """The queue's members as ``config.queues.setMembers`` takes them, some penalties changed (by username)."""
    return [{"user_id": u.id, "penalty": changed.get(u.username, u.queues[qid].priority)}
            for u in server.get_directory().users.values() if qid in u.queues]


@pytest_twisted.ensureDeferred
async def test_a_priority_changed_while_working_reaches_asterisk_and_the_status_stays(tmp_path: Path) -> None:
    problems: list[str] = []  # what UCS warned about: an action refused, a change Asterisk did not confirm

    def warned(event: dict[str, Any]) -> None:
        if event.get("log_level", LogLevel.info) >= LogLevel.warn:
            problems.append(formatEvent(event))

    globalLogPublisher.addObserver(warned)
    server = await start_demo(tmp_path)
    watch: AMITestClient | None = None
    try:
        bar = await ready_agent(server, 1)
        other = await ready_agent(server, 2)
        root = await admin_bar(server)
        watch = await watcher(server)
        support, sales = queue_id(server, "support"), queue_id(server, "sales")
        assert await penalties(server, "SIP/1001") == {"support": 0, "sales": 0}
        await bar.call("agent.changeStatus", ["AUX", "Lunch"])
        await settle(server, bar, other)
        bar.inbox.clear()
        other.inbox.clear()
        await watch.barrier()
        watch.messages.clear()

        # config.users.edit: support's priority 0 → 3, sales unchanged
        agent1 = uid(server, "agent1")
        await root.call("config.users.edit", [{"id": agent1, "queues": {str(support): {"priorities": 3},
                                                                        str(sales): {"priorities": 0}}}])
        await server.get_agents().settled()
        assert await penalties(server, "SIP/1001") == {"support": 3, "sales": 0}
        assert await penalties(server, "SIP/1002") == {"support": 0, "sales": 0}  # the others' untouched
        await watch.barrier()
        # one QueuePenalty, in that queue only; the pause, the membership left alone
        assert member_events(watch, "SIP/1001") == [("QueueMemberPenalty", "support", "3")]
        await settle(server, bar, other)
        assert "agent.status" not in bar.events() and "agent.logout" not in bar.events()
        state = await bar.call("state")
        assert (state["status"], state["reason"]) == ("AUX", "Lunch")
        assert {q["name"]: q["priorities"] for q in state["queues"]} == {"Support": 3, "Sales": 0}
        assert "agent.status" not in other.events()
        assert (await other.call("state"))["status"] == "READY"
        watch.messages.clear()

        # config.queues.setMembers: agent1 in sales 0 → 5 (every member listed, the others as they were)
        reply = await root.call("config.queues.setMembers", [sales, members_of(server, sales, agent1=5)])
        assert {"user_id": agent1, "penalty": 5} in reply["members"]
        await server.get_agents().settled()
        assert await penalties(server, "SIP/1001") == {"support": 3, "sales": 5}
        assert await penalties(server, "SIP/1002") == {"support": 0, "sales": 0}
        await watch.barrier()
        assert member_events(watch, "SIP/1001") == [("QueueMemberPenalty", "sales", "5")]
        assert member_events(watch, "SIP/1002") == []
        await settle(server, bar, other)
        assert "agent.status" not in bar.events()
        state = await bar.call("state")
        assert (state["status"], state["reason"]) == ("AUX", "Lunch")
        assert {q["name"]: q["priorities"] for q in state["queues"]} == {"Support": 3, "Sales": 5}
        watch.messages.clear()

        # a status change afterwards: pauses only, no needless QueuePenalty; the penalties stay
        await bar.call("agent.changeStatus", ["READY"])
        await server.get_agents().settled()
        await watch.barrier()
        seen = member_events(watch, "SIP/1001")
        assert sorted(seen) == [("QueueMemberPause", "sales", "5"), ("QueueMemberPause", "support", "3")]
        assert await penalties(server, "SIP/1001") == {"support": 3, "sales": 5}
        assert problems == []
        for c in (bar, other, root):
            c.close()
    finally:
        if watch is not None and watch.transport is not None:
            watch.transport.loseConnection()
        await server.service.stopService()
        globalLogPublisher.removeObserver(warned)
