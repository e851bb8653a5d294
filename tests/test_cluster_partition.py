"""Partitions with real separation (issue 20): a node's network to PostgreSQL or to NATS cut.

Two whole ``UCSServer``s with ``[cluster]`` in one process (as test_cluster_bars), the
real PostgreSQL and a private ``nats-server``, one simulated Asterisk over real AMI TCP.
Each of node-a's links goes through a :class:`cutproxy.CutProxy` (a real TCP forwarder
the test cuts and restores), so that what node-a sees is a network that went, not a
server that stopped for everybody.  A watch on the reactor counts the simulator's AMI
sessions all along: never two owners.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest_twisted
from twisted.internet import reactor, task

from clusterkit import cluster_env
from cutproxy import CutProxy
from natsserver import NatsServer, nats_server  # noqa: F401 - the fixture
from pgkit import POSTGRES_URL
from serverkit import until
from test_cluster_bars import cluster_notices, login_bar, until_rows
from test_cluster_node import ami_up, start_server
from ucs import demo
from ucs.server import UCSServer
from ucs.sim.service import SimService
from serverkit import working_agent


def via(url: str, proxy: CutProxy) -> str:
    """``url`` with its port replaced by the proxy's."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl()


class AmiWatch:
    """The most AMI sessions the simulator had at once, looked at every 20 ms."""

    def __init__(self, sim: SimService) -> None:
        self.sim = sim
        self.most = 0
        self.loop = task.LoopingCall(self._look)
        self.loop.clock = reactor

    def _look(self) -> None:
        self.most = max(self.most, len(self.sim.server.sessions))

    def start(self) -> None:
        self.loop.start(0.02)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()


async def start(tmp_path: Path, name: str, store: str, nats: str, sim: SimService, domain: str,
                servers: list[UCSServer]) -> tuple[UCSServer, Any]:
    server = await start_server(tmp_path, name, store, sim, domain, cluster={
        "nats": [nats], "check_interval": 0.5, "step_down_after": 2.0, "release_after": 4})
    servers.append(server)
    return server, server.get_cluster()


@pytest_twisted.ensureDeferred
async def test_the_owner_cut_off_from_postgresql_steps_down_and_the_other_takes_over_without_a_fight(
        tmp_path: Path, nats_server: NatsServer) -> None:  # noqa: F811 - the fixture
    async with cluster_env(phones=2) as env:
        store, domain, sim, servers = env.store, env.domain, env.sim, env.servers
        pg = CutProxy(reactor, urlsplit(POSTGRES_URL).port or 5432)
        pg.start()
        env.proxies.append(pg)
        watch = AmiWatch(sim)
        env.closing.append(watch.stop)
        a, node_a = await start(tmp_path, "node-a", via(store, pg), nats_server.url, sim, domain, servers)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 20)
        b, node_b = await start(tmp_path, "node-b", store, nats_server.url, sim, domain, servers)
        await node_b.elector.when("standby")
        watch.start()

        pg.freeze()  # node-a's packets to PostgreSQL are lost; PostgreSQL drops its session
        await until(lambda: not a.get_ami_client().running, 30)  # within step_down_after, generously
        assert not node_a.elector.is_owner
        await node_b.elector.when("owner")
        await until(lambda: ami_up(b), 30)
        assert len(sim.server.sessions) == 1
        assert node_a.health()["role"] != "owner"

        pg.restore()  # node-a comes back: a standby, no fight
        await until(lambda: node_a.elector.state == "standby", 30)
        await task.deferLater(reactor, 3.0, lambda: None)  # a few of its retries: still a standby
        assert node_a.elector.state == "standby" and node_b.elector.is_owner and ami_up(b)
        assert not a.get_ami_client().running
        assert len(sim.server.sessions) == 1
        assert watch.most == 1, f"{watch.most} AMI sessions at once"


@pytest_twisted.ensureDeferred
async def test_the_owner_cut_off_from_nats_stays_owner_says_so_and_the_standby_converges_when_it_is_back(
        tmp_path: Path, nats_server: NatsServer) -> None:  # noqa: F811 - the fixture
    async with cluster_env(phones=2) as env:
        store, domain, sim, servers = env.store, env.domain, env.sim, env.servers
        nats = CutProxy(reactor, nats_server.port)
        nats.start()
        env.proxies.append(nats)
        watch = AmiWatch(sim)
        env.closing.append(watch.stop)
        clients = env.clients
        a, node_a = await start(tmp_path, "node-a", store, via(nats_server.url, nats), sim, domain, servers)
        await node_a.elector.when("owner")
        await until(lambda: ami_up(a), 20)
        await demo.seed(a.get_directory(), 2)
        b, node_b = await start(tmp_path, "node-b", store, nats_server.url, sim, domain, servers)
        await node_b.elector.when("standby")
        await working_agent(a, 1)
        agent = next(x for x in a.get_agents().all() if x.device == "SIP/1001")
        await until(lambda: b.get_mirror().get(agent.id) is not None
                    and node_b.health()["term"] == node_a.health()["term"], 20)
        bar_a = await login_bar(a, *demo.user_of(1))
        bar_b = await login_bar(b, *demo.user_of(1))
        clients += [bar_a, bar_b]
        watch.start()

        await nats.refuse()  # node-a cannot reach NATS; node-b and PostgreSQL can
        await until(lambda: node_a.link.state == "down", 20)
        told = await bar_a.wait(lambda: next(iter(cluster_notices(bar_a)), None), 20)
        assert told["ok"] is False and told["role"] == "owner" and "calls and states here go on" in told["message"]
        assert node_a.health()["nats"] == "down" and node_a.elector.is_owner  # /health says so too
        # The owner keeps the AMI truth: a call comes and goes, its CDR is written.
        sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        sim.sim.caller_calls("5000", "420777000001", "First")
        first = await bar_a.event("call.connect", timeout=20)
        sim.sim.phone("SIP/1001").hangup()
        await bar_a.event("call.hangup", timeout=20)
        await until_rows(store, [first["data"]["uniqueid"]])
        # A second call begins while node-a is cut off, and stays up.
        await a.get_agents().change_status(agent.id, "READY")
        sim.sim.caller_calls("5000", "420777000002", "Second")
        second = await bar_a.event("call.connect", timeout=20)
        assert node_a.elector.is_owner and ami_up(a)

        nats.restore()
        await until(lambda: node_a.link.state == "up", 30)
        await bar_a.wait(lambda: (cluster_notices(bar_a) or [{}])[-1].get("ok") or None, 20)
        # The standby's bar shows the call that began meanwhile; its state lists it.
        seen = await bar_b.wait(lambda: next((m for m in bar_b.log if m["event"] == "call.connect"
                                              and m["data"]["uniqueid"] == second["data"]["uniqueid"]), None), 30)
        assert seen["data"]["caller_number"] == "420777000002"
        assert [c["uniqueid"] for c in (await bar_b.call("state"))["calls"]] == [second["data"]["uniqueid"]]
        sim.sim.phone("SIP/1001").hangup()
        await bar_b.wait(lambda: next((m for m in bar_b.log if m["event"] == "call.hangup"
                                       and m["data"]["uniqueid"] == second["data"]["uniqueid"]), None), 20)
        await until_rows(store, [first["data"]["uniqueid"], second["data"]["uniqueid"]])
        assert node_a.elector.is_owner and not node_b.elector.is_owner
        assert watch.most == 1, f"{watch.most} AMI sessions at once"
