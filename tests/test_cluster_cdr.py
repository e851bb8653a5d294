"""Issue 20: across a kill -9 of the AMI owner, each call's CDR exactly once and whole,
and the agents kept.

Two real ``twistd --reactor=asyncio ucs`` nodes, the real PostgreSQL and NATS,
the simulated Asterisk in this process.  Two customer calls are up on the
owner (node-a) when it is killed with SIGKILL: one ends during the gap (before
node-b has taken the AMI link), the other after node-b resynced.  The store
then holds exactly one CDR per call: the second with its real start and answer
times and its whole journey (what node-b knew as a standby, not the seconds
Asterisk tells nor a journey begun at the resync), the
first written by node-b from its replica, saying that its end was not seen.
An agent logged in and paused through a bar on node-b (the standby then) is
still paused in the simulator's queues after node-b took over, and node-b's
agents have them in that status.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor, threads

from clusterkit import (DEADLINE, Node, cdr_rows, cluster_env, health, node_config, seed, settle, until_health,
                        until_rows, wait_line)
from serverkit import until
from test_web_api import CallError, connect
from ucs import demo


@pytest_twisted.ensureDeferred
async def test_kill_9_of_the_owner_mid_call_keeps_the_agents_and_leaves_each_cdr_exactly_once(
        tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, domain, sim = env.store, env.domain, env.sim
        nodes = env.nodes
        bars = env.clients
        await seed(store)  # the demo's users, lines and queues
        config_a, port_a = node_config(tmp_path, "node-a", store, sim, domain)
        config_b, port_b = node_config(tmp_path, "node-b", store, sim, domain)
        a = Node(config_a, tmp_path / "node-a")
        nodes.append(a)
        await wait_line(a, "this node owns the AMI link now")
        await until_health(port_a, lambda h: h["ami"] == "up" and h["cluster"]["term"])
        b = Node(config_b, tmp_path / "node-b")
        nodes.append(b)
        await until_health(port_b, lambda h: h["cluster"]["term"] and h["cluster"]["role"] == "standby")

        # Agent 2 logs in and goes AUX through a bar on node-b, the standby: node-a does it.
        username, password = demo.user_of(2)
        _, identifier, _ = demo.line_of(2)
        bar = await connect(f"ws://127.0.0.1:{port_b}/ws")
        bars.append(bar)
        await bar.call("login", [username, password])
        await bar.call("identifier", [identifier])
        await bar.call("provision")
        await bar.call("agent.changeStatus", ["AUX", "Break"])
        members = [q.members["SIP/1002"] for q in sim.sim.queues.values() if "SIP/1002" in q.members]
        assert members and all(m.paused for m in members)
        assert (await health(port_a))["agents"] == 1 and (await health(port_b))["agents"] == 0

        # Two customers call two phones, which answer; node-a has both calls, node-b has
        # followed its stream up to them.
        sim.sim.dialplan.add("from-carrier", "_1XXX", [("Dial", "SIP/${EXTEN},20"), ("Hangup", "")])
        for phone in ("SIP/1001", "SIP/1002"):
            sim.sim.phone(phone).set_behaviour(answer_after=0.1)
        started = reactor.seconds()  # type: ignore[attr-defined]
        sim.sim.caller_calls("1001", "420777000001", "Long Call")
        sim.sim.caller_calls("1002", "420777000002", "Short Call")
        await until(lambda: all(sim.sim.phone(p).line.channels and any(
            c.leg is not None and c.leg.answered for c in sim.sim.phone(p).line.channels)
            for p in ("SIP/1001", "SIP/1002")), 10)
        await until_health(port_a, lambda h: h["calls"] == 2)
        seq = (await health(port_a))["cluster"]["seq"]
        await until_health(port_b, lambda h: h["cluster"]["seq"] >= seq)
        await settle(1.0)  # the answers' events too
        seq = (await health(port_a))["cluster"]["seq"]
        await until_health(port_b, lambda h: h["cluster"]["seq"] >= seq)

        # kill -9 of the owner; the short call ends at once, while nobody owns the AMI link.
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait(DEADLINE)
        killed = time.time()
        sim.sim.phone("SIP/1002").hangup()
        assert await threads.deferToThread(cdr_rows, store) == []  # nobody wrote either CDR yet
        # Meanwhile (node-b claims the lock for seconds before it owns the link) the bar asks for
        # its agent: node-b holds the request until an owner serves commands (itself, once it
        # has taken over), not an error to retry by hand ([cluster] takeover_wait).
        asked = bar.request("agent.state")
        assert (await health(port_b))["ami"] == "down"

        # node-b takes over and resyncs: the long call is up there; the short call's CDR is
        # written from what node-a had told.
        await wait_line(b, "this node owns the AMI link now")
        await until_health(port_b, lambda h: h["ami"] == "up" and h["calls"] == 1)
        await until_rows(store, 1)

        # node-b restored the agent from the store: still AUX, still paused in every queue.
        await until_health(port_b, lambda h: h["agents"] == 1)
        reply = await bar.wait(lambda: bar.replies.pop(asked, None), DEADLINE)
        assert "result" in reply, reply
        state = reply["result"]
        assert (state["status"], state["reason"], state["device"]) == ("AUX", "Break", "SIP/1002")
        members = [q.members.get("SIP/1002") for q in sim.sim.queues.values()]
        assert all(m is not None and m.paused for m in members)

        # The long call ends on node-b's watch.
        sim.sim.phone("SIP/1001").hangup()
        await until_health(port_b, lambda h: h["calls"] == 0)
        rows = await until_rows(store, 2)
        await settle(1.0)
        rows = await threads.deferToThread(cdr_rows, store)
        assert len(rows) == 2 and len({r["uniqueid"] for r in rows}) == 2  # exactly once each
        by_caller = {r["caller_number"]: r for r in rows}
        long, short = by_caller["420777000001"], by_caller["420777000002"]

        # The long call's CDR is whole: its real start and answer (node-a's), not the take-over's.
        assert abs(long["created"] - started) < 0.5
        assert long["connected"] is not None and long["connected"] - started < 1.0
        assert long["disconnected"] > killed
        assert "ended_unseen" not in long["data"]
        # ... and its whole journey: the phone rung and answered on node-a's watch, once.
        steps = [(s["Device"], s["Description"]) for s in long["data"]["journey"]]
        assert [d for d, _ in steps] == ["SIP/carrier", "SIP/1001"], steps
        assert steps[1][1].startswith("Rang ") and steps[1][1].endswith("(1001), answered"), steps
        # The short call's CDR says its end was not seen, and when it was found gone.
        assert abs(short["created"] - started) < 0.5 and short["connected"] is not None
        assert "no node owned the AMI link" in short["data"]["ended_unseen"]
        assert short["disconnected"] >= killed
