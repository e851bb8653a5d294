"""The real agent bar, behind a load balancer, resumes on another node (issue 20), unchanged.

Chromium loads the demo CRM page through a TCP forwarder (the load balancer:
Twisted's port forwarder, whose target the test switches) to node A, the owner,
and the agent logs in with the bar.  Node B starts; the balancer now sends new
connections to B; A's container stops.  The bar, which only knows the
balancer's address, reconnects, sends ``session.resume`` with its session id and
is READY again on the same phone -- B found the session in the store -- with no
"session expired" and no login form; the agent never left the simulator's
queues.  Harness as tests/test_bar_browser.py (skipped without Chromium and
Playwright).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.protocols.portforward import ProxyFactory

from clusterkit import cluster_env, ready_bar_in_chromium
from serverkit import until
from test_bar_browser import UCS, pytestmark  # noqa: F401 - the skip
from test_cluster_sessions import WINDOW, members
from ucs import demo


@pytest_twisted.ensureDeferred
async def test_the_bar_behind_a_load_balancer_resumes_on_another_node(tmp_path: Path) -> None:
    async with cluster_env(phones=2) as env:
        sim, servers = env.sim, env.servers
        balancer = ProxyFactory("127.0.0.1", 0)
        listening = reactor.listenTCP(0, balancer, interface="127.0.0.1")  # type: ignore[attr-defined]
        env.closing.append(listening.stopListening)
        web = {"listen": "127.0.0.1", "port": 0, "resume_window": WINDOW}
        a = await env.start_owner(tmp_path, "node-a", 2, web=web)
        await until(lambda: bool(a.get_pbx_link().resyncs), 10)
        balancer.port = a.get_web_service().port
        front = UCS(a, a.get_web_service())
        front.base = f"http://127.0.0.1:{listening.getHost().port}"

        async def b_takes_over() -> None:
            await a.get_agents().flush()
            b = await env.start(tmp_path, "node-b", web=web)
            await b.get_cluster().elector.when("standby")
            balancer.port = b.get_web_service().port  # new connections go to B
            await a.service.stopService()  # A goes: its bars lose their sockets
            servers.remove(a)

        logged_in: list[Any] = []

        def scenario() -> None:
            with ready_bar_in_chromium(front) as bar:
                logged_in.append(front.run(lambda: {x.username: x.logged_in for x in a.get_agents().all()}))
                front.run(lambda: defer.ensureDeferred(b_takes_over()))
                bar.wait("onError", where="a.indexOf('lost') >= 0")
                again = bar.wait("onReady", count=2, timeout=20_000)["args"][0]
                assert again["status"] == "READY" and again["device"]["device"] == "SIP/1001"
                bar.page.wait_for_selector(".ucs-conn.ucs-ok")
                assert "onCredentials" not in bar.names()[bar.names().index("onReady"):]

        await threads.deferToThread(scenario)
        b = servers[-1]
        # No second login: B's agent is the one that logged in on A, READY since then (B, the
        # owner once A's lock is free, restores the agents from the store before its AMI link).
        await b.get_cluster().elector.when("owner")
        await until(lambda: bool(b.get_agents().all()), 15)
        assert {a.username: a.logged_in for a in b.get_agents().all()} == logged_in[0]
        assert b.get_agents().all()[0].status.name == "READY"
        assert [s.user.username for s in b.get_sessions() if s.user is not None] == [demo.user_of(1)[0]]
        assert members(sim, "SIP/1001") == {"support": (False, ""), "sales": (False, "")}
