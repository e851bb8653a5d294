"""The whole server for a test: the container with the simulated PBX inside
(demo mode, no simulated callers), a store in the test's directory, the web
server on a free port; and opening a WebSocket to it, as a bar does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint

from ucs.api.session import Session
from ucs.config import Config
from ucs.server import UCSServer


def demo_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    base: dict[str, dict[str, Any]] = {
        "demo": {"enabled": True, "call_rate": 0, "softphone": False},
        "store": {"url": f"sqlite:///{tmp_path / 'ucs.db'}"},
        "web": {"port": 0},
        "plugins": {"directory": str(tmp_path / "plugins")},
        # READY at login (the default is AUX "Login"): tests of calls need agents who take them
        "agents": {"initial_status": "ready"},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Config().replace(**base)


def write_plugin(tmp_path: Path, name: str, source: str) -> None:
    """``<name>.py`` in the plugin directory :func:`demo_config` gives (loaded at start)."""
    directory = tmp_path / "plugins"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(source)


async def start_demo(tmp_path: Path, **sections: dict[str, Any]) -> UCSServer:
    """Started, with the PBX model synchronised; stop it with ``server.service.stopService()``."""
    server = UCSServer(demo_config(tmp_path, **sections), reactor)
    server.service.startService()
    await server.service.whenStarted()
    if not server.get_pbx_link().resyncs:
        await server.get_pbx_link().whenSynced()
    return server


async def working_agent(server: UCSServer, n: int) -> Session:
    """Demo agent ``n`` logged in with its phone paired (READY)."""
    from ucs import demo

    username, password = demo.user_of(n)
    _, identifier, _ = demo.line_of(n)
    reg = server.get_registry()
    session = server.get_sessions().create()
    await reg.call(session, "login", [username, password])
    await reg.call(session, "identifier", [identifier])
    await reg.call(session, "provision")
    return session


async def until(test: Any, timeout: float = 5.0) -> None:
    """Wait for a condition (checked every 10 ms), never longer than ``timeout``."""
    deadline = reactor.seconds() + timeout  # type: ignore[attr-defined]
    while not test():
        if reactor.seconds() > deadline:  # type: ignore[attr-defined]
            raise AssertionError(f"condition not met within {timeout} s")
        await task.deferLater(reactor, 0.01, lambda: None)


async def open_websocket(
    url: str,
    protocol: type[WebSocketClientProtocol],
    client: Any,
    *,
    origin: str | None = None,
    headers: dict[str, str] | None = None,
    endpoint: IStreamClientEndpoint | None = None,
) -> None:
    """Connect a WebSocket client to ``url`` and wait for the server's hello.

    ``protocol`` finds the test's ``client`` as ``self.factory.client``; the
    client fires its ``opened`` Deferred on hello.  ``endpoint``: connect
    through it (TLS) rather than plain TCP to the URL's host and port.
    """
    factory = WebSocketClientFactory(url, origin=origin, headers=headers or {})
    factory.protocol = protocol
    factory.client = client  # type: ignore[attr-defined]
    if endpoint is None:
        host, port = url.split("//")[1].split("/")[0].split(":")
        endpoint = TCP4ClientEndpoint(reactor, host, int(port))
    await endpoint.connect(factory)
    opened: defer.Deferred[None] = client.opened
    await opened
