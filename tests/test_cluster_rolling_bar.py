"""A rolling restart of 3 UCS nodes behind a load balancer, the real bar in Chromium, a call up throughout (issue 20).

Three ``twistd --reactor=asyncio ucs`` processes share the real PostgreSQL (a schema of
their own) and NATS; the simulated Asterisk runs in this process; a round-robin TCP load
balancer (``tests/balancer.py``) stands in front of the three web ports, and Chromium loads
the demo CRM page through it.  The agent logs in with the bar and is READY; a customer
calls the support queue and the agent answers with the bar's button.  Then each node in
turn is stopped (SIGTERM), started again and waited for until it follows the owner's term
-- the node serving the bar's WebSocket first, the owner last (unless it is that node);
as the bar and the AMI link move, later steps may take the bar's new node or the new owner.
After each step: the bar is still logged in (no login form, no "session expired"), READY,
and shows the call connected with the customer's number; the simulator still has the same
call up, answered by the agent's phone.  The bar's node went at least once (the bar
reconnected through the balancer and resumed its session) and so did the owner (the call
was adopted by the new owner).  At the end the agent hangs up with the bar and the store
has exactly one CDR for the call, with its real answer time.  Harness as
tests/test_bar_browser.py (skipped without Chromium and Playwright).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor, threads

from balancer import Balancer
from clusterkit import (cdr_rows, cluster_env, health, ready_bar_in_chromium, seed, settle, until_health, until_rows,
                        wait_line)
from serverkit import until
from test_bar_browser import Bar, pytestmark  # noqa: F401 - the skip

CALLER = "420777123456"
CONNECTED = '.ucs-call[data-call-state="3"]'


@pytest_twisted.ensureDeferred
async def test_a_rolling_restart_behind_a_load_balancer_keeps_the_bar_and_its_call(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        store, sim = env.store, env.sim
        sim.sim.phone("SIP/1001").set_behaviour(remote_answer=True)  # answered from the bar (SIP NOTIFY)
        listening: Any = None
        env.closing.append(lambda: listening.stopListening() if listening is not None else None)
        await seed(store)
        nodes = env.processes(tmp_path, extra='[agents]\ninitial_status = "ready"\nacw_seconds = 0\n')
        names, ports, procs = list(nodes.configs), nodes.ports, nodes.procs
        by_port = {p: n for n, p in ports.items()}

        async def following(name: str) -> None:
            owner = await nodes.owner()
            term = (await health(ports[owner]))["cluster"]["term"]
            await until_health(ports[name],
                               lambda h: h["cluster"]["role"] == "standby" and h["cluster"]["term"] == term)

        await nodes.start_all()
        for n in ("node-b", "node-c"):
            await following(n)

        balancer = Balancer(reactor, [ports[n] for n in names])
        listening = reactor.listenTCP(0, balancer, interface="127.0.0.1")  # type: ignore[attr-defined,arg-type]
        front: Any = SimpleNamespace(base=f"http://127.0.0.1:{listening.getHost().port}")

        def on_reactor(fn: Any, *args: Any) -> Any:
            return threads.blockingCallFromThread(reactor, fn, *args)  # type: ignore[arg-type]

        def bar_node() -> str:
            """The node serving the bar's WebSocket (the one open WebSocket through the balancer)."""
            ws = on_reactor(balancer.websockets)
            assert len(ws) == 1, ws
            return by_port[ws[0]]

        def call_up() -> Any:
            """The customer's call in the simulator: its channel on the agent's phone, answered and up."""
            chans = [c for c in sim.sim.phone("SIP/1001").line.channels
                     if c.leg is not None and c.leg.answered and not c.leg.ended and not c.gone]
            return chans[0] if len(chans) == 1 else None

        def shows_the_call(bar: Bar) -> None:
            """Logged in, READY, the customer's call connected: on the page and in the bar's callbacks."""
            bar.page.wait_for_selector(CONNECTED, timeout=30_000)
            said = [e["args"][0] for e in bar.log() if e["name"] in ("onReady", "onStateChange")]
            assert said[-1]["status"] == "READY", said[-1]
            assert CALLER in bar.page.inner_text(".ucs-calls")
            assert bar.page.query_selector("[data-ref=loginBtn]:visible") is None  # still logged in
            assert bar.page.query_selector("[data-act=hangup]:visible") is not None

        steps: list[dict[str, Any]] = []

        def scenario() -> None:
            with ready_bar_in_chromium(front) as bar:
                on_reactor(sim.sim.caller_calls, "5000", CALLER, "Jana Novak")
                assert bar.wait("onCallRinging", timeout=20_000)["args"][0]["caller_number"] == CALLER
                bar.page.click("[data-act=answer]")
                bar.wait("onCallConnect", timeout=20_000)
                shows_the_call(bar)
                channel = on_reactor(lambda: call_up())
                assert channel is not None
                uniqueid = channel.linkedid
                readies = len([n for n in bar.names() if n == "onReady"])

                # The bar's node first, the owner last (unless it is the bar's node).
                owner = on_reactor(lambda: defer.ensureDeferred(nodes.owner()))
                first = bar_node()
                order = [first] + [n for n in names if n not in (first, owner)]
                order += [owner] if first != owner else []
                for name in order:
                    was_bars = bar_node() == name
                    was_owner = on_reactor(lambda: defer.ensureDeferred(nodes.owner())) == name
                    procs[name].stop()
                    if was_bars:  # the bar lost its socket: it comes back through the balancer, resumed
                        bar.wait("onReady", count=readies + 1, timeout=40_000)
                        readies += 1
                        bar.page.wait_for_selector(".ucs-conn.ucs-ok", timeout=20_000)
                    on_reactor(lambda n=name: defer.ensureDeferred(wait_line(nodes.start(n), "election")))
                    on_reactor(lambda n=name: defer.ensureDeferred(following(n)))
                    shows_the_call(bar)
                    assert bar.log()[-1]["name"] != "onCredentials"
                    assert "onCredentials" not in bar.names()[bar.names().index("onReady"):]
                    now = on_reactor(lambda: call_up())
                    assert now is channel, f"the call in the simulator changed across {name}'s restart"
                    steps.append({"node": name, "bars": was_bars, "owner": was_owner, "now_on": bar_node()})
                assert bar.page.query_selector("[data-act=answer]:visible") is None

                # The agent hangs up with the bar; the caller is gone in the simulator.
                bar.page.click("[data-act=hangup]")
                bar.wait("onCallHangup", timeout=20_000)
                bar.page.wait_for_selector(CONNECTED, state="detached", timeout=20_000)
                on_reactor(lambda: defer.ensureDeferred(until(lambda: call_up() is None, 20)))
                steps.append({"uniqueid": uniqueid})

        await threads.deferToThread(scenario)
        print("rolling restart:", steps)
        assert [s["node"] for s in steps[:-1]] and len(steps) == 4, steps
        assert any(s["bars"] for s in steps[:-1]), steps  # the bar's node restarted under it
        assert any(s["owner"] for s in steps[:-1]), steps  # and the owner, with the call up
        await until_rows(store, 1)
        await settle(2)  # a second row (a CDR written twice under two uniqueids) would come now
        rows = await threads.deferToThread(cdr_rows, store)
        assert len(rows) == 1, rows
        assert rows[0]["uniqueid"] == steps[-1]["uniqueid"] and rows[0]["caller_number"] == CALLER
        assert rows[0]["connected"] is not None
