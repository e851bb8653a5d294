"""A rolling restart of 3 real UCS nodes with agent bars connected (issue 20).

Three ``twistd --reactor=asyncio ucs`` processes share the real PostgreSQL (a schema of
their own) and NATS; the simulated Asterisk runs in this process.  Two agents work
through bars on the two standbys.  Each node in turn -- the standbys first, the owner
last -- is stopped gracefully (SIGTERM) and started again; a bar whose node stopped
reconnects to a node that runs (what a load balancer does) and resumes its session from
the store: READY with its own phone.  A customer call is made and ended while each node
is away.  At the end: each call's CDR once, and the AMI link moved once (when the owner
stopped), never back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import threads

from clusterkit import DEADLINE, OWNS, cdr_rows, cluster_env, pause, seed, until_health, until_rows
from serverkit import until
from test_web_api import connect
from ucs import demo


@pytest_twisted.ensureDeferred
async def test_a_rolling_restart_of_three_nodes_keeps_every_bar_and_every_cdr(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, sim, bars = env.store, env.sim, env.clients
        await seed(store)
        nodes = env.processes(tmp_path, extra='[agents]\ninitial_status = "ready"\n')  # READY once with a phone
        names, ports, procs = list(nodes.configs), nodes.ports, nodes.procs
        await nodes.start_all()

        # Agent 1 works through a bar on node-b, agent 2 on node-c.
        where = {1: "node-b", 2: "node-c"}
        sids: dict[int, str] = {}
        live: dict[int, Any] = {}
        for i, n in where.items():
            bar = await connect(f"ws://127.0.0.1:{ports[n]}/ws")
            bars.append(bar)
            await bar.call("login", list(demo.user_of(i)))
            await bar.call("identifier", [demo.line_of(i)[1]])
            await bar.call("provision")
            sids[i], live[i] = bar.hello["sid"], bar
            state = await _ready(bar)
            assert state["device"]["device"] == demo.line_of(i)[0]

        sim.sim.dialplan.add("from-carrier", "_1XXX", [("Dial", "SIP/${EXTEN},20"), ("Hangup", "")])
        for phone in ("SIP/1001", "SIP/1002"):
            sim.sim.phone(phone).set_behaviour(answer_after=0.1)
        calls = 0

        async def a_call() -> None:
            """A customer calls phone 1001, it answers, the customer hangs up: one CDR more."""
            nonlocal calls
            owner = await nodes.owner()
            sim.sim.caller_calls("1001", f"42077700000{calls}", "Customer")
            await until(lambda: any(c.leg is not None and c.leg.answered
                                    for c in sim.sim.phone("SIP/1001").line.channels), 20)
            await until_health(ports[owner], lambda h: h["calls"] == 1)
            sim.sim.phone("SIP/1001").hangup()
            await until_health(ports[owner], lambda h: h["calls"] == 0)
            calls += 1
            await until_rows(store, calls)

        await a_call()
        for name in ("node-c", "node-b", "node-a"):  # the standbys first, the owner last
            await threads.deferToThread(procs[name].stop)
            # Its bars reconnect to a node that runs and resume their sessions.
            for i, n in list(where.items()):
                if n != name:
                    continue
                other = next(x for x in names if x != name)
                bar = await connect(f"ws://127.0.0.1:{ports[other]}/ws")
                bars.append(bar)
                resumed = await bar.call("session.resume", [sids[i]])
                assert resumed["sid"] == sids[i] and resumed["state"] == "READY", resumed
                state = await _ready(bar)
                assert state["device"]["device"] == demo.line_of(i)[0]
                where[i], live[i] = other, bar
            await a_call()  # while the node is away
            nodes.start(name)
            await until_health(ports[name], lambda h: h["cluster"]["term"] and h["cluster"]["role"] == "standby")

        # Every bar READY with its phone; agents still working; each call's CDR once.
        for i, bar in live.items():
            state = await _ready(bar)
            assert state["device"]["device"] == demo.line_of(i)[0]
        rows = await threads.deferToThread(cdr_rows, store)
        assert len(rows) == calls == 4 and len({r["uniqueid"] for r in rows}) == calls
        # The AMI link moved once (node-a stopped), and no node took it back.
        assert sum(n.output.count(OWNS) for n in env.nodes) == 2
        assert len(sim.server.sessions) == 1


async def _ready(bar: Any) -> dict[str, Any]:
    """The bar's ``state`` once it says READY (a standby shows what it followed of the owner)."""
    state: dict[str, Any] = {}
    for _ in range(int(DEADLINE / 0.2)):
        state = await bar.call("state")
        if state["status"] == "READY":
            return state
        await pause()
    raise AssertionError(f"the bar never said READY: {state.get('status')} {state.get('reason')}")
