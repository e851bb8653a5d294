"""What every in-process cluster test sets up and takes down: a schema, a domain, a PBX, nodes.

A module of its own, not ``conftest`` (see :mod:`pgkit`).  ``cluster_env`` gives
a PostgreSQL schema of the test's own (``env.store`` points into it), a NATS
domain no other test uses, a started simulated Asterisk with ``phones`` phones,
and lists the test fills: ``env.servers`` (``env.start`` appends to it),
``env.clients``, ``env.closing``, ``env.nodes`` and ``env.proxies``.  On the way
out, whatever the test did, ``closing`` is called, the clients' sockets are
dropped, the node processes stopped, the servers stopped last-started first, then the proxies and the simulator, and the
schema dropped, so a failing test leaves nothing behind for the next one.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import reactor, threads
from twisted.internet.defer import Deferred

from pgkit import POSTGRES_URL, _postgres_schema, with_search_path
from ucs.server import UCSServer
from ucs.sim.service import SimService


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
    # Nodes in processes of their own (``test_cluster_processes.Node``): stopped if still running,
    # their output printed (pytest shows it when the test fails).
    nodes: list[Any] = field(default_factory=list)
    # ``cutproxy.CutProxy``s between the nodes and PostgreSQL or NATS: stopped once the nodes
    # are, since a node cut off from its store mid-stop would not stop.
    proxies: list[Any] = field(default_factory=list)

    async def start(self, tmp_path: Path, name: str, **sections: dict[str, Any]) -> UCSServer:
        """A started node ``name`` (:func:`test_cluster_node.start_server`), stopped on the way out."""
        from test_cluster_node import start_server  # here: that module uses this one

        server = await start_server(tmp_path, name, self.store, self.sim, self.domain, **sections)
        self.servers.append(server)
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
