"""What every in-process cluster test sets up and takes down: a schema, a domain, a PBX, nodes.

A module of its own, not ``conftest`` (see :mod:`pgkit`).  ``cluster_env`` gives
a PostgreSQL schema of the test's own (``env.store`` points into it), a NATS
domain no other test uses, a started simulated Asterisk with ``phones`` phones,
and lists the test fills: ``env.servers`` (``env.start`` appends to it),
``env.clients``, ``env.closing``, ``env.nodes`` and ``env.proxies``.  On the way
out, whatever the test did, ``closing`` is called, the clients' sockets are
dropped, the node processes stopped, the servers stopped last-started first, then the proxies and the simulator, and the
schema dropped, so a failing test leaves nothing behind for the next one.

What the cluster tests share beside it: nodes in processes of their own
(:class:`Node`; ``env.processes(...)`` writes their configuration files and
starts an owner and its standbys, :class:`ProcessNodes`; their ``/health``, the
lines they log, which one owns the AMI link), the demo's directory written to
the store (:func:`seed`), the CDRs the nodes wrote (:func:`cdr_rows`,
:func:`until_rows`), the real agent bar in Chromium logged in through a
balancer's address (:func:`ready_bar_in_chromium`), and three process nodes behind
a round-robin load balancer with that bar on a customer's call (:func:`balanced_nodes`,
:class:`BalancedNodes`: the rolling restarts, SIGTERM and ``kill -9``).
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import treq
from twisted.internet import defer, reactor, task, threads
from twisted.internet.defer import Deferred

from balancer import Balancer
from natsserver import free_port
from pgkit import POSTGRES_URL, _postgres_schema, with_search_path
from serverkit import until
from test_cluster_stream import NATS_URL
from test_twistd import TIMEOUT, Running
from ucs import demo
from ucs.bus import EventBus
from ucs.directory.directory import Directory
from ucs.server import UCSServer
from ucs.sim.service import SimService
from ucs.store import open_store

#: How long a test waits for a node in a process of its own (a start, a failover, a CDR).
DEADLINE = 60.0


@dataclass
class ClusterEnv:
    schema: str
    store: str
    domain: str
    sim: SimService
    servers: list[UCSServer] = field(default_factory=list)
    # Anything with a ``proto`` (a bar client: its ``proto`` is dropped when set) or a protocol.
    clients: list[Any] = field(default_factory=list)
    # Called before anything else is taken down, last added first (a Deferred returned is awaited):
    # what the test started around the nodes, a balancer's port, a watch on the simulator.
    closing: list[Callable[[], Any]] = field(default_factory=list)
    # Nodes in processes of their own (:class:`Node`): stopped if still running,
    # their output printed (pytest shows it when the test fails).
    nodes: list[Any] = field(default_factory=list)
    # ``cutproxy.CutProxy``s between the nodes and PostgreSQL or NATS: stopped once the nodes
    # are, since a node cut off from its store mid-stop would not stop.
    proxies: list[Any] = field(default_factory=list)

    def processes(self, tmp_path: Path, names: tuple[str, ...] = ("node-a", "node-b", "node-c"), extra: str = "",
                  stores: dict[str, str] | None = None) -> ProcessNodes:
        """Process nodes ``names`` (:class:`ProcessNodes`), not started yet; ``stores``: a
        node's store URL other than :attr:`store` (through a proxy the test cuts)."""
        configs = {}
        for name in names:
            path, port = node_config(tmp_path, name, (stores or {}).get(name, self.store), self.sim, self.domain)
            if extra:
                path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")
            configs[name] = (path, port)
        return ProcessNodes(self, tmp_path, configs)

    async def start(self, tmp_path: Path, name: str, **sections: dict[str, Any]) -> UCSServer:
        """A started node ``name`` (:func:`test_cluster_node.start_server`), stopped on the way out."""
        from test_cluster_node import start_server  # here: that module uses this one

        server = await start_server(tmp_path, name, self.store, self.sim, self.domain, **sections)
        self.servers.append(server)
        return server

    async def start_owner(self, tmp_path: Path, name: str, agents: int, **sections: dict[str, Any]) -> UCSServer:
        """Node ``name`` started (:meth:`start`) and owning the AMI link, up, with the demo's
        ``agents`` agents in its directory (so in the store, for the nodes after it)."""
        from test_cluster_node import ami_up

        server = await self.start(tmp_path, name, **sections)
        await server.get_cluster().elector.when("owner")
        await until(lambda: ami_up(server), 10)
        await demo.seed(server.get_directory(), agents)
        return server

    async def start_standby(self, tmp_path: Path, name: str, owner: UCSServer,
                            **sections: dict[str, Any]) -> UCSServer:
        """Node ``name`` started (:meth:`start`): a standby that follows ``owner``'s term."""
        server = await self.start(tmp_path, name, **sections)
        await server.get_cluster().elector.when("standby")
        await until(lambda: server.get_cluster().health()["term"] == owner.get_cluster().health()["term"], 10)
        return server


def drop(client: Any) -> None:
    proto = getattr(client, "proto", client)
    if proto is not None:
        proto.dropConnection(abort=True)


async def _done(result: Any) -> None:
    if isinstance(result, Deferred):
        await result


@asynccontextmanager
async def cluster_env(phones: int = 2) -> AsyncIterator[ClusterEnv]:
    schema = f"ucs_test_{secrets.token_hex(6)}"
    await threads.deferToThread(_postgres_schema, "create", schema)
    sim = SimService(port=0, phones=phones, reactor=reactor)
    sim.startService()
    env = ClusterEnv(schema, with_search_path(POSTGRES_URL, schema),
                     f"test-{secrets.token_hex(4)}.example.com", sim)
    try:
        yield env
    finally:
        for close in reversed(env.closing):
            await _done(close())
        for c in env.clients:
            drop(c)
        for n in env.nodes:
            if n.proc.poll() is None:
                await threads.deferToThread(n.stop)
            print(n.output)
        for s in reversed(env.servers):
            await s.service.stopService()
        for proxy in env.proxies:
            await _done(proxy.stop())
        await sim.stopService()
        await threads.deferToThread(_postgres_schema, "drop", schema)


# -- nodes in processes of their own -------------------------------------------------------------


class Node(Running):
    """``twistd -n --reactor=asyncio ucs --config FILE``, its command line passed through
    ``wrap`` (``ip netns exec NS ...``: :class:`test_cluster_netns.NsNode`)."""

    def __init__(self, config: Path, cwd: Path, wrap: Callable[[list[str]], list[str]] = list) -> None:
        self.config = config
        super().__init__(["--config", str(config)], cwd, options=["--reactor=asyncio"], wrap=wrap)

    def kill(self) -> None:
        """``kill -9``: the process gone at once, nothing of it cleaned up (its sockets closed by
        the kernel), waited for; its output read to the end."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)


def node_config(tmp_path: Path, name: str, store: str, sim: SimService, domain: str) -> tuple[Path, int]:
    """The configuration file of process node ``name`` (in ``tmp_path / name``), and its web port."""
    port = free_port()
    user, secret = sim.credentials
    directory = tmp_path / name
    directory.mkdir()
    path = directory / "ucs.toml"
    path.write_text(f"""
[store]
url = "{store}"
[web]
port = {port}
[ami]
host = "127.0.0.1"
port = {sim.port}
username = "{user}"
secret = "{secret}"
[plugins]
directory = "{directory / 'plugins'}"
[cluster]
enabled = true
nats = ["{NATS_URL}"]
domain = "{domain}"
node = "{name}"
""", encoding="utf-8")
    return path, port


#: What a process node logs when it becomes the AMI owner.
OWNS = "this node owns the AMI link now"


@dataclass
class ProcessNodes:
    """Process nodes of one :class:`ClusterEnv`, their configuration files written
    (:func:`node_config`, ``extra`` TOML appended to each): :meth:`start` one, or
    :meth:`start_all` -- the first becomes the owner, the others standbys.  Each started
    node is in ``env.nodes``: stopped on the way out."""

    env: ClusterEnv
    tmp_path: Path
    configs: dict[str, tuple[Path, int]]
    procs: dict[str, Node] = field(default_factory=dict)

    @property
    def ports(self) -> dict[str, int]:
        return {name: port for name, (_, port) in self.configs.items()}

    def start(self, name: str) -> Node:
        """Node ``name`` started (again)."""
        node = Node(self.configs[name][0], self.tmp_path / name)
        self.procs[name] = node
        self.env.nodes.append(node)
        return node

    async def start_all(self) -> None:
        """The first node started and owning the AMI link (with a term), then each other
        one started and following as a standby."""
        first, *others = self.configs
        await wait_line(self.start(first), OWNS)
        await until_health(self.ports[first], lambda h: h["ami"] == "up" and h["cluster"]["term"])
        for name in others:
            self.start(name)
            await until_health(self.ports[name], lambda h: h["cluster"]["term"] and h["cluster"]["role"] == "standby")

    async def owner(self, among: list[str] | None = None) -> str:
        """The running node (of ``among``) whose AMI link is up."""
        ports = self.ports
        return await ami_owner({n: ports[n] for n in among or ports}, self.procs)


async def ami_owner(ports: Mapping[str, int | str], procs: Mapping[str, Any], timeout: float = 5) -> str:
    """The running node of ``ports`` (port or address) whose AMI link is up, waiting for
    one, generously; ``procs`` has their processes (a node that exited is not asked)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        for name, where in ports.items():
            if procs[name].proc.poll() is None:
                try:
                    h = await health(where, timeout)
                except Exception:  # noqa: S112 - not listening, or cut off
                    continue
                if h["ami"] == "up" and h["cluster"]["role"] == "owner":
                    return name
        await pause()
    raise AssertionError(f"none of {sorted(ports)} owns the AMI link")


async def settle(seconds: float) -> None:
    """Let ``seconds`` pass: what would come late (a second CDR) has come by then."""
    await task.deferLater(reactor, seconds, lambda: None)


async def pause() -> None:
    """A fifth of a second, between two looks at something outside this process."""
    await settle(0.2)


def _url(where: int | str) -> str:
    return f"http://127.0.0.1:{where}/health" if isinstance(where, int) else f"http://{where}/health"


async def health(where: int | str, timeout: float = 5) -> dict[str, Any]:
    """The ``/health`` of the node on port ``where`` of this host, or at address ``"host:port"``."""
    response = await treq.get(_url(where), timeout=timeout)
    body: dict[str, Any] = json.loads(await response.content())
    return body


async def until_health(where: int | str, test: Any, timeout: float = 5) -> dict[str, Any]:
    """The node's ``/health`` once ``test`` accepts it (waiting while it does not answer)."""
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            seen = await health(where, timeout)
        except Exception:  # noqa: S112 - not listening yet
            seen = {}
        if seen and test(seen):
            return seen
        await pause()
    raise AssertionError(f"/health on {where} never became what the test waits for; last: {seen}")


async def wait_line(node: Running, text: str) -> str:
    """The node's first output line with ``text`` (waited for in a thread)."""
    line: str = await threads.deferToThread(node.wait_for, text)
    return line


# -- the store -----------------------------------------------------------------------------------


async def seed(store: str, agents: int = 2) -> None:
    """The demo's users, lines and queues for ``agents`` agents, written to the store
    (before the nodes start: each reads the directory from there)."""
    seeding = await open_store(store, reactor)
    try:
        directory = Directory(seeding, EventBus())
        await directory.load()
        await demo.seed(directory, agents)
    finally:
        await seeding.close()


def cdr_rows(store: str) -> list[dict[str, Any]]:
    """Every CDR in the store (blocking: call it in a thread)."""
    with psycopg.connect(store) as conn:
        cur = conn.execute("SELECT uniqueid, caller_number, created, connected, disconnected, data FROM cdr")
        rows = [dict(zip(("uniqueid", "caller_number", "created", "connected", "disconnected", "data"), r))
                for r in cur.fetchall()]
    for r in rows:
        if isinstance(r["data"], str):
            r["data"] = json.loads(r["data"])
    return rows


async def until_rows(store: str, n: int) -> list[dict[str, Any]]:
    """The CDRs once there are at least ``n``."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        rows = await threads.deferToThread(cdr_rows, store)
        if len(rows) >= n:
            return rows
        await pause()
    raise AssertionError(f"fewer than {n} CDRs within {DEADLINE} s")


# -- the real agent bar ---------------------------------------------------------------------------


@contextmanager
def ready_bar_in_chromium(front: Any, agent: int = 1) -> Iterator[Any]:
    """Chromium with the demo CRM page from ``front.base`` (a load balancer's address), demo
    agent ``agent`` logged in with the bar and READY: the bar (:class:`test_bar_browser.Bar`).

    Blocking (run it in a worker thread).  When the block ends well the bar is closed,
    which asserts the page had no error; the browser is closed whatever happens."""
    from playwright.sync_api import sync_playwright

    from test_bar_browser import ARGS, CHROMIUM, Bar

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            bar = Bar(browser, front)
            bar.login(agent)
            ready = bar.wait("onReady")["args"][0]
            assert ready["status"] == "READY", ready
            yield bar
            bar.close()
        finally:
            browser.close()


# -- three nodes behind a load balancer, the bar on a call: the rolling restarts ---------------------

#: The customer who calls the support queue (5000) in the rolling restarts.
CALLER = "420777123456"
#: A call the bar shows connected.
CONNECTED = '.ucs-call[data-call-state="3"]'


def on_reactor(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the reactor, from the worker thread Playwright runs in (a Deferred waited for)."""
    return threads.blockingCallFromThread(reactor, fn, *args)  # type: ignore[arg-type]


@dataclass
class BalancedNodes:
    """Process nodes (:class:`ProcessNodes`) behind a round-robin TCP load balancer
    (``tests/balancer.py``), ``front.base`` its address, for the bar in Chromium; the agent's
    phone answers what the bar answers.  The blocking methods are for the Playwright thread."""

    env: ClusterEnv
    nodes: ProcessNodes
    balancer: Balancer
    front: Any

    @property
    def names(self) -> list[str]:
        return list(self.nodes.configs)

    async def following(self, name: str) -> None:
        """Node ``name`` is a standby that follows the owner's term."""
        ports = self.nodes.ports
        term = (await health(ports[await self.nodes.owner()]))["cluster"]["term"]
        await until_health(ports[name], lambda h: h["cluster"]["role"] == "standby" and h["cluster"]["term"] == term)

    def owner(self) -> str:
        """The running node that owns the AMI link (blocking)."""
        return on_reactor(lambda: defer.ensureDeferred(self.nodes.owner()))  # type: ignore[no-any-return]

    def restart(self, name: str) -> None:
        """Node ``name`` started again and following the owner's term as a standby (blocking)."""
        on_reactor(lambda: defer.ensureDeferred(wait_line(self.nodes.start(name), "election")))
        on_reactor(lambda: defer.ensureDeferred(self.following(name)))

    def bar_node(self) -> str:
        """The node serving the bar's WebSocket (the one open WebSocket through the balancer)."""
        ws = on_reactor(self.balancer.websockets)
        assert len(ws) == 1, ws
        return {p: n for n, p in self.nodes.ports.items()}[ws[0]]

    def order(self) -> list[str]:
        """Each node once: the bar's node first, the owner last (unless it is the bar's node)."""
        owner, first = self.owner(), self.bar_node()
        return [first] + [n for n in self.names if n not in (first, owner)] + ([owner] if first != owner else [])

    def call_up(self) -> Any:
        """The customer's call in the simulator: its channel on the agent's phone, answered and
        up, or ``None`` (blocking)."""
        return on_reactor(self._call_up)

    def _call_up(self) -> Any:
        chans = [c for c in self.env.sim.sim.phone("SIP/1001").line.channels
                 if c.leg is not None and c.leg.answered and not c.leg.ended and not c.gone]
        return chans[0] if len(chans) == 1 else None

    def answered_call(self, bar: Any) -> Any:
        """The customer calls the support queue, the agent answers with the bar's button: the
        call's channel in the simulator, the bar showing it (blocking)."""
        on_reactor(self.env.sim.sim.caller_calls, "5000", CALLER, "Jana Novak")
        assert bar.wait("onCallRinging", timeout=20_000)["args"][0]["caller_number"] == CALLER
        bar.page.click("[data-act=answer]")
        bar.wait("onCallConnect", timeout=20_000)
        shows_the_call(bar)
        channel = self.call_up()
        assert channel is not None
        return channel

    def hang_up(self, bar: Any) -> None:
        """The agent hangs up with the bar; the bar and the simulator have the call gone (blocking)."""
        bar.page.click("[data-act=hangup]")
        bar.wait("onCallHangup", timeout=20_000)
        bar.page.wait_for_selector(CONNECTED, state="detached", timeout=20_000)
        on_reactor(lambda: defer.ensureDeferred(until(lambda: self._call_up() is None, 20)))


def shows_the_call(bar: Any, timeout: float = 30_000) -> None:
    """Logged in, READY, the customer's call connected: on the page and in the bar's callbacks
    (within ``timeout`` ms)."""
    bar.page.wait_for_selector(CONNECTED, timeout=timeout)
    assert bar_status(bar) == "READY"
    assert CALLER in bar.page.inner_text(".ucs-calls")
    assert bar.page.query_selector("[data-ref=loginBtn]:visible") is None  # still logged in
    assert bar.page.query_selector("[data-act=hangup]:visible") is not None


def bar_status(bar: Any) -> str:
    """The agent's status the bar was last told (``onReady``, ``onStateChange``)."""
    said = [e["args"][0] for e in bar.log() if e["name"] in ("onReady", "onStateChange")]
    status: str = said[-1]["status"]
    return status


async def balanced_nodes(env: ClusterEnv, tmp_path: Path) -> BalancedNodes:
    """node-a (the owner), node-b and node-c (standbys following its term) in processes of
    their own, agents READY at login and no wrap-up, the demo's directory seeded, behind a
    :class:`Balancer` listening on this host (closed with ``env``)."""
    env.sim.sim.phone("SIP/1001").set_behaviour(remote_answer=True)  # answered from the bar (SIP NOTIFY)
    await seed(env.store)
    nodes = env.processes(tmp_path, extra='[agents]\ninitial_status = "ready"\nacw_seconds = 0\n')
    await nodes.start_all()
    balancer = Balancer(reactor, list(nodes.ports.values()))
    cluster = BalancedNodes(env, nodes, balancer, None)
    for name in cluster.names[1:]:
        await cluster.following(name)
    listening = reactor.listenTCP(0, balancer, interface="127.0.0.1")  # type: ignore[attr-defined]
    env.closing.append(listening.stopListening)
    cluster.front = SimpleNamespace(base=f"http://127.0.0.1:{listening.getHost().port}")
    return cluster


async def one_cdr(store: str, uniqueid: str) -> dict[str, Any]:
    """The call's CDR, once it is written, and no other (a second row, for a CDR written twice
    under two uniqueids, would come within the two seconds waited)."""
    await until_rows(store, 1)
    await settle(2)
    rows = await threads.deferToThread(cdr_rows, store)
    assert len(rows) == 1, rows
    assert rows[0]["uniqueid"] == uniqueid and rows[0]["caller_number"] == CALLER
    assert rows[0]["connected"] is not None
    return rows[0]


async def give_phone(server: UCSServer, username: str, n: int) -> None:
    """``username`` (the demo supervisor) works at demo phone ``n`` too."""
    directory = server.get_directory()
    user = directory.user_by_username(username)
    line = directory.line_by_device(demo.line_of(n)[0])
    assert user is not None and line is not None
    await directory.edit("users", user.id, {"lines": [line.id]})
