"""A private NATS server (with JetStream) a test can really stop and start.

The shared server on 127.0.0.1:4222 carries the rest of the suite and must
never be stopped; a test that needs NATS to go away gets a server of its own:
``nats-server -js`` on 127.0.0.1 and a free port, its JetStream files in a
fresh directory (kept across a stop and a start, as a real server's are).
Needs the ``nats-server`` binary (``$UCS_NATS_SERVER`` or on ``PATH``); without
it the test fails, as the cluster tests do without NATS.

:class:`NatsCluster` (fixture ``nats_cluster``): three such servers made one NATS
cluster with JetStream, each server's route to each other one through a
:class:`cutproxy.CutProxy` of its own, so that a test can cut one server's routes
(:meth:`NatsCluster.cut`: that server alone, the two others a majority) and mend
them.  The servers advertise a route address that refuses: what a server learns of
the others by gossip never bypasses the forwarders.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server this test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """One ``nats-server -js``; with ``cluster`` (its name) a member of a NATS cluster, routes
    on ``cluster_port`` to the ``routes`` (URLs), a monitoring port (``/routez``, ``/jsz``)."""

    def __init__(self, directory: Path | None = None, name: str = "", cluster: str = "") -> None:
        self.binary = os.environ.get("UCS_NATS_SERVER") or shutil.which("nats-server") or ""
        self.dir = directory or Path(tempfile.mkdtemp(prefix="ucs-nats-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.name = name
        self.cluster = cluster
        self.cluster_port = free_port() if cluster else 0
        self.monitor_port = free_port() if cluster else 0
        self.routes: list[str] = []
        #: Where the others are told to route to, by gossip: a port nobody listens on.
        self.advertise = free_port() if cluster else 0

    def command(self) -> list[str]:
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.dir / "js")]
        if self.cluster:
            args += ["-n", self.name, "-m", str(self.monitor_port), "--cluster_name", self.cluster,
                     "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                     "--cluster_advertise", f"127.0.0.1:{self.advertise}", "--routes", ",".join(self.routes)]
        return args

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Blocking (a second at most): start it and wait until it accepts connections."""
        log = open(self.dir / "nats.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nats-server did not listen on {self.port}:\n{(self.dir / 'nats.log').read_text()}")

    def stop(self) -> None:
        """Blocking: stop it (SIGTERM to the process this started), wait for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class NatsCluster:
    """Three :class:`NatsServer`s in one NATS cluster; ``proxies[(i, j)]`` carries server
    ``i``'s route to server ``j`` (a :class:`cutproxy.CutProxy` on the reactor)."""

    def __init__(self, reactor: Any, directory: Path, size: int = 3) -> None:
        from cutproxy import CutProxy

        self.dir = directory
        name = f"ucs-test-{os.getpid()}-{free_port()}"
        self.servers = [NatsServer(self.dir / f"nats-{i + 1}", f"nats-{i + 1}", name) for i in range(size)]
        self.proxies: dict[tuple[int, int], CutProxy] = {}
        for i, server in enumerate(self.servers):
            for j, other in enumerate(self.servers):
                if i != j:
                    proxy = CutProxy(reactor, other.cluster_port)
                    proxy.start()
                    self.proxies[(i, j)] = proxy
                    server.routes.append(f"nats://127.0.0.1:{proxy.port}")

    @property
    def binary(self) -> str:
        return self.servers[0].binary

    def start(self) -> None:
        """Blocking: every server started (the routes form once the reactor runs the proxies)."""
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        """Blocking: every server stopped."""
        for server in self.servers:
            server.stop()

    def _routes_of(self, i: int) -> list[Any]:
        return [p for (a, b), p in self.proxies.items() if i in (a, b)]

    def cut(self, i: int) -> Any:
        """Server ``i``'s routes cut (closed, new ones refused): it is alone, the others a
        majority.  Its clients stay connected to it.  A Deferred."""
        from twisted.internet.defer import gatherResults

        return gatherResults([d for p in self._routes_of(i) if (d := p.refuse()) is not None])

    def mend(self, i: int) -> None:
        """Server ``i``'s routes let through again (the servers reconnect them on their own)."""
        for p in self._routes_of(i):
            p.restore()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer()
    if not server.binary:
        pytest.fail("nats-server not found (install it, or set UCS_NATS_SERVER): the cluster tests need it",
                    pytrace=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three servers in one NATS cluster (:class:`NatsCluster`), started, their JetStream files
    under ``tmp_path``; the test waits for the routes and JetStream's meta leader
    (``test_cluster_nats_split.formed``)."""
    from twisted.internet import reactor

    cluster = NatsCluster(reactor, tmp_path / "nats")
    if not cluster.binary:
        pytest.fail("nats-server not found (install it, or set UCS_NATS_SERVER): the cluster tests need it",
                    pytrace=False)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        for p in cluster.proxies.values():
            p.stop()
