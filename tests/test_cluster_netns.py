"""Three real UCS nodes, each in a network namespace of its own (issue 20: failover, partitions).

Three ``twistd --reactor=asyncio ucs`` processes, each started with ``ip netns exec``
in a namespace joined to a bridge (:mod:`netns`); the simulated Asterisk listens on
the bridge's address in this process; PostgreSQL and NATS are reached through each
node's own forwarders on the bridge (so one node's links can go without the others').
Agents work through bars (real WebSocket clients) on the two standbys; two customer
calls are up.

- The owner's network cut (its veth down: PostgreSQL, NATS, AMI, its bars, all at
  once), or the owner killed (``kill -9``) -> another node owns the AMI link and the bars on the surviving nodes show the
  truth again (the call that ended meanwhile gone, the other still connected) -- the
  time it took is printed and held to the issue's 10 s; each call's CDR once; the cut
  node mended (the killed one started again) comes back as a standby and the link stays
  where it is.
- The owner cut off from PostgreSQL *and* NATS while it still reaches Asterisk ->
  it steps down (its AMI link closed) before another node takes over; never two AMI
  sessions; no CDR twice; restored, it stays a standby.
- The owner cut off from NATS only (its forwarder frozen: it cannot tell) -> the
  standbys, whose own NATS link is fine, stop hearing its heartbeat: ``/health`` says
  ``owner: "unheard"`` and their bars are told; told again when it is heard.

Timings: the defaults (``check_interval`` 1, ``step_down_after`` 3, ``release_after`` 6):
what a contact center runs gets the issue's 10 s. A cut owner's lock is freed after 6 s
and, its last proof being older than the claim, taken over at once (about 6 s in all).
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from clusterkit import DEADLINE, OWNS, Node, ami_owner, cdr_rows, health, pause, seed, until_health
from netns import NetLab, Netns, netlab  # noqa: F401 - the fixture
from pgkit import POSTGRES_URL, _postgres_schema, with_search_path
from serverkit import until
from test_cluster_bars import Bar, cluster_notices, connect
from test_cluster_partition import AmiWatch
from test_cluster_stream import NATS_URL
from ucs import demo
from ucs.sim.service import SimService

PORT = 8080  # every node has a network of its own
TIMINGS = {"check_interval": 1.0, "step_down_after": 3.0, "release_after": 6}


class NsNode(Node):
    """``ip netns exec NS twistd -n --reactor=asyncio ucs --config FILE`` (the pid is twistd's)."""

    def __init__(self, ns: Netns, config: Path, cwd: Path) -> None:
        self.ns = ns
        super().__init__(config, cwd, wrap=ns.command)

    @property
    def port(self) -> str:
        return f"{self.ns.address}:{PORT}"


class Cluster:
    """The three nodes, their namespaces, the simulator, the store; what the tests share."""

    def __init__(self, lab: NetLab, tmp_path: Path) -> None:
        self.lab = lab
        self.tmp_path = tmp_path
        self.schema = f"ucs_test_{secrets.token_hex(6)}"
        self.store = with_search_path(POSTGRES_URL, self.schema)
        self.domain = f"test-{secrets.token_hex(4)}.example.com"
        self.sim = SimService(port=0, interface=lab.gateway, phones=2, reactor=reactor)
        self.nodes: dict[str, NsNode] = {}
        self.every: list[NsNode] = []
        self.bars: list[Bar] = []

    async def start(self) -> None:
        await threads.deferToThread(_postgres_schema, "create", self.schema)
        self.sim.startService()
        await seed(self.store)
        pg, nats = urlsplit(POSTGRES_URL), urlsplit(NATS_URL)
        for name in ("node-a", "node-b", "node-c"):
            self.lab.add(name, forward={"pg": pg.port or 5432, "nats": nats.port or 4222},
                         keepalive=TIMINGS["release_after"])
        await self.run("node-a")
        await self.until(self.nodes["node-a"], lambda h: h["ami"] == "up" and h["cluster"]["term"])
        for name in ("node-b", "node-c"):
            await self.run(name)
            await self.until(self.nodes[name], lambda h: h["cluster"]["term"] and h["cluster"]["role"] == "standby"
                             and h["cluster"]["owner"] == "heard")

    def config(self, name: str) -> Path:
        ns = self.lab.nodes[name]
        gw = self.lab.gateway
        user, secret = self.sim.credentials
        pg = urlsplit(self.store)
        store = pg._replace(netloc=f"{pg.username}@{gw}:{ns.forwarders['pg'].port}").geturl()
        directory = self.tmp_path / name
        directory.mkdir(exist_ok=True)
        path = directory / "ucs.toml"
        path.write_text(f"""
[store]
url = "{store}"
[web]
listen = "{ns.address}"
port = {PORT}
[ami]
host = "{gw}"
port = {self.sim.port}
username = "{user}"
secret = "{secret}"
[plugins]
directory = "{directory / 'plugins'}"
[agents]
initial_status = "ready"
[cluster]
enabled = true
nats = ["nats://{gw}:{ns.forwarders['nats'].port}"]
domain = "{self.domain}"
node = "{name}"
check_interval = {TIMINGS['check_interval']}
step_down_after = {TIMINGS['step_down_after']}
release_after = {TIMINGS['release_after']}
""", encoding="utf-8")
        return path

    async def run(self, name: str) -> NsNode:
        node = NsNode(self.lab.nodes[name], self.config(name), self.tmp_path / name)
        self.nodes[name] = node
        self.every.append(node)
        if name == "node-a" and len(self.every) == 1:
            await threads.deferToThread(node.wait_for, OWNS)
        return node

    async def health(self, node: NsNode) -> dict[str, Any]:
        return await health(node.port, timeout=2)

    async def until(self, node: NsNode, test: Any) -> dict[str, Any]:
        return await until_health(node.port, test, timeout=2)

    async def owner(self, among: list[str]) -> str:
        """The node of ``among`` whose AMI link is up (waiting for one)."""
        return await ami_owner({name: self.nodes[name].port for name in among}, self.nodes, timeout=2)

    async def bar(self, node: str, agent: int) -> Bar:
        """Agent ``agent`` logged in and READY on its phone, through a bar on ``node``."""
        bar = await connect(f"ws://{self.nodes[node].port}/ws")
        self.bars.append(bar)
        if (await bar.call("login", list(demo.user_of(agent))))["state"] != "READY":  # else working already
            await bar.call("identifier", [demo.line_of(agent)[1]])
            await bar.call("provision")
        for _ in range(int(DEADLINE / 0.2)):
            if (await bar.call("state"))["status"] == "READY":
                return bar
            await pause()
        raise AssertionError(f"agent {agent}'s bar on {node} never READY")

    async def call_up(self, phone: str, caller: str) -> None:
        """A customer calls ``phone`` (1001, 1002), which answers."""
        self.sim.sim.caller_calls(phone, caller, "Customer")
        await until(lambda: any(c.leg is not None and c.leg.answered
                                for c in self.sim.sim.phone(f"SIP/{phone}").line.channels), 20)

    async def stop(self) -> None:
        for b in self.bars:
            if b.proto is not None:
                b.proto.dropConnection(abort=True)
        for n in self.every:
            if n.proc.poll() is None:
                n.proc.kill()  # a cut node cannot stop cleanly (its store is away)
                await threads.deferToThread(n.proc.wait, 30)
            print(f"--- {n.ns.name}\n{n.output}")  # shown by pytest when the test fails
        await self.lab.stop()
        await self.sim.stopService()
        await threads.deferToThread(_postgres_schema, "drop", self.schema)


def calls_of(bar: Bar) -> dict[str, dict[str, Any]]:
    """The calls a bar was last told of, by uniqueid (connect/change adds, hangup removes)."""
    calls: dict[str, dict[str, Any]] = {}
    for m in bar.log:
        if m["event"].startswith("call.") and "uniqueid" in m["data"]:
            if m["event"] == "call.hangup":
                calls.pop(m["data"]["uniqueid"], None)
            else:
                calls[m["data"]["uniqueid"]] = m["data"]
    return calls


async def live_ids(bar: Bar) -> list[str]:
    return sorted(c["uniqueid"] for c in (await bar.call("state"))["calls"])


def owns(nodes: list[NsNode]) -> int:
    return sum(n.output.count(OWNS) for n in nodes)


@pytest.mark.parametrize("how", ["cut", "kill -9"])
@pytest_twisted.ensureDeferred
async def test_the_owner_cut_or_killed_mid_call_moves_the_link_and_every_surviving_bar_is_right_within_10_s(
        tmp_path: Path, netlab: NetLab, how: str) -> None:  # noqa: F811 - the fixture
    c = Cluster(netlab, tmp_path)
    try:
        await c.start()
        c.sim.sim.dialplan.add("from-carrier", "_1XXX", [("Dial", "SIP/${EXTEN},30"), ("Hangup", "")])
        for phone in ("SIP/1001", "SIP/1002"):
            c.sim.sim.phone(phone).set_behaviour(answer_after=0.1)
        # Each agent's bar on both standbys: whichever takes over, one of them stays a standby.
        bars = {(node, agent): await c.bar(node, agent) for node in ("node-b", "node-c") for agent in (1, 2)}
        bar_1, bar_2 = bars["node-b", 1], bars["node-c", 2]
        await c.call_up("1001", "420777000001")
        await c.call_up("1002", "420777000002")
        await c.until(c.nodes["node-a"], lambda h: h["calls"] == 2)
        for bar in bars.values():
            await bar.wait(lambda b_=bar: calls_of(b_) or None, 20)
        first, = calls_of(bar_1)
        second, = calls_of(bar_2)
        term = (await c.health(c.nodes["node-a"]))["cluster"]["term"]

        # node-a's cable is pulled mid-call; at once the second customer hangs up.
        cut = time.monotonic()
        if how == "cut":
            netlab.cut("node-a")
        else:
            c.nodes["node-a"].proc.kill()
        c.sim.sim.phone("SIP/1002").hangup()
        new = await c.owner(["node-b", "node-c"])
        # Every surviving bar right again: the second call gone, the first still connected, both
        # agents READY.
        want = {1: [first], 2: []}

        async def right(bar: Bar, agent: int) -> bool:
            state = await bar.call("state")
            return (sorted(c["uniqueid"] for c in state["calls"]) == want[agent] == sorted(calls_of(bar))
                    and state["status"] == "READY")

        for (node, agent), bar in bars.items():
            for _ in range(int(30 / 0.2)):
                if await right(bar, agent):
                    break
                await pause()
        took = time.monotonic() - cut
        print(f"{how}: {new} owned the AMI link and the bars were right {took:.2f} s after node-a's {how}")
        for (node, agent), bar in bars.items():
            assert await right(bar, agent), f"agent {agent}'s bar on {node} ({new} owns the link): {calls_of(bar)}"
        assert took < 10.0, f"the bars were right again only {took:.2f} s after the cut (the issue asks < 10 s)"
        # The call is in every surviving node's model: the new owner's (from Asterisk) and the standby's.
        h = await c.until(c.nodes[new], lambda h: h["calls"] == 1 and h["cluster"]["term"] != term)
        other = next(n for n in ("node-b", "node-c") if n != new)
        await c.until(c.nodes[other], lambda h2: h2["cluster"]["term"] == h["cluster"]["term"])
        for bar in bars.values():  # agents still READY on their phones
            state = await bar.call("state")
            assert state["status"] == "READY", state

        # The first call ends after the take-over: each call's CDR once.
        c.sim.sim.phone("SIP/1001").hangup()
        for bar in bars.values():
            await bar.wait(lambda b_=bar: (first not in calls_of(b_)) or None, 20)
        rows = await _rows(c.store, {first, second})
        assert next(r for r in rows if r["uniqueid"] == first)["connected"] is not None

        # node-a mended (or started again): its election session is gone, it comes back a standby
        # and follows.
        if how == "cut":
            netlab.mend("node-a")
        else:
            await threads.deferToThread(c.nodes["node-a"].proc.wait, 30)
            await c.run("node-a")
        a = c.nodes["node-a"]
        await c.until(a, lambda ha: ha["cluster"]["role"] == "standby" and ha["cluster"]["postgresql"] == "up"
                      and ha["cluster"]["term"].startswith(f"{new}:") and ha["ami"] == "down")
        await until(lambda: len(c.sim.server.sessions) == 1, 60)  # its old AMI session ended too
        await task.deferLater(reactor, 3.0, lambda: None)
        assert (await c.health(a))["cluster"]["role"] == "standby"
        assert (await c.health(c.nodes[new]))["cluster"]["role"] == "owner"
        assert owns(c.every) == 2 and len(c.sim.server.sessions) == 1
        assert await threads.deferToThread(cdr_rows, c.store) == rows  # node-a wrote nothing over them
        assert OWNS not in a.output if how == "kill -9" else a.output.count(OWNS) == 1
    finally:
        await c.stop()


@pytest_twisted.ensureDeferred
async def test_the_owner_cut_off_from_postgresql_and_nats_but_not_asterisk_steps_down_before_another_takes_over(
        tmp_path: Path, netlab: NetLab) -> None:  # noqa: F811 - the fixture
    c = Cluster(netlab, tmp_path)
    watch = AmiWatch(c.sim)
    try:
        await c.start()
        c.sim.sim.dialplan.add("from-carrier", "_1XXX", [("Dial", "SIP/${EXTEN},30"), ("Hangup", "")])
        c.sim.sim.phone("SIP/1001").set_behaviour(answer_after=0.1)
        bar_1 = await c.bar("node-b", 1)
        await c.call_up("1001", "420777000001")
        await bar_1.wait(lambda: calls_of(bar_1) or None, 20)
        first, = calls_of(bar_1)
        watch.start()

        a = c.nodes["node-a"]
        for what in ("pg", "nats"):
            a.ns.forwarders[what].freeze()  # its packets to both are lost; AMI still works
        await threads.deferToThread(a.wait_for, "election node-a: this node steps down")
        new = await c.owner(["node-b", "node-c"])
        assert watch.most == 1, f"{watch.most} AMI sessions at once"
        await c.until(c.nodes[new], lambda h: h["calls"] == 1)
        h = await c.health(a)  # reachable: only its PostgreSQL and NATS went
        assert h["ami"] == "down" and h["cluster"]["role"] != "owner" and h["cluster"]["postgresql"] == "down"
        assert await live_ids(bar_1) == [first]

        c.sim.sim.phone("SIP/1001").hangup()
        await bar_1.wait(lambda: (first not in calls_of(bar_1)) or None, 20)
        rows = await _rows(c.store, {first})

        for what in ("pg", "nats"):
            a.ns.forwarders[what].restore()
        await c.until(a, lambda h: h["cluster"]["role"] == "standby" and h["cluster"]["nats"] == "up"
                      and h["cluster"]["term"].startswith(f"{new}:"))
        await task.deferLater(reactor, 3.0, lambda: None)
        assert (await c.health(a))["cluster"]["role"] == "standby" and owns(c.every) == 2
        assert watch.most == 1, f"{watch.most} AMI sessions at once"
        assert await threads.deferToThread(cdr_rows, c.store) == rows
    finally:
        watch.stop()
        await c.stop()


@pytest_twisted.ensureDeferred
async def test_the_owner_cut_off_from_nats_only_is_unheard_by_the_standbys_which_tell_their_bars(
        tmp_path: Path, netlab: NetLab) -> None:  # noqa: F811 - the fixture
    c = Cluster(netlab, tmp_path)
    try:
        await c.start()
        bar_1 = await c.bar("node-b", 1)
        bar_2 = await c.bar("node-c", 2)
        assert not [n for n in cluster_notices(bar_1) + cluster_notices(bar_2) if not n["ok"]]

        a = c.nodes["node-a"]
        a.ns.forwarders["nats"].freeze()  # node-a's NATS packets lost: it cannot tell yet
        for bar, name in ((bar_1, "node-b"), (bar_2, "node-c")):
            told = await bar.wait(lambda b_=bar: next((n for n in cluster_notices(b_) if not n["ok"]), None), 20)
            assert told["owner"] == "unheard" and told["nats"] == "up" and told["node"] == name
            assert "not been heard" in told["message"] and "out of date" in told["message"]
            h = await c.health(c.nodes[name])
            assert h["cluster"]["owner"] == "unheard" and h["cluster"]["owner_node"] == "node-a"
            assert h["cluster"]["nats"] == "up" and h["cluster"]["role"] == "standby"
        assert (await c.health(a))["cluster"]["role"] == "owner"  # PostgreSQL is fine: it keeps the link

        a.ns.forwarders["nats"].restore()
        for bar, name in ((bar_1, "node-b"), (bar_2, "node-c")):
            await bar.wait(lambda b_=bar: cluster_notices(b_)[-1]["ok"] or None, 30)
            await c.until(c.nodes[name], lambda h: h["cluster"]["owner"] == "heard")
        assert owns(c.every) == 1
    finally:
        await c.stop()


async def _rows(store: str, uniqueids: set[str]) -> list[dict[str, Any]]:
    """The CDR rows once there is exactly one for each of ``uniqueids`` (and no other)."""
    rows: list[dict[str, Any]] = []
    for _ in range(int(DEADLINE / 0.2)):
        rows = await threads.deferToThread(cdr_rows, store)
        if sorted(r["uniqueid"] for r in rows) == sorted(uniqueids):
            return rows
        await pause()
    raise AssertionError(f"CDRs {[r['uniqueid'] for r in rows]}, not one each of {sorted(uniqueids)}")
