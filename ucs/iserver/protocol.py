"""The Interaction Processor's WebSocket: frames in and out, nothing else.

Each connection gets a :class:`ucs.iserver.processor.Controller`; this module
only checks the origin (as the agent bar's endpoint does), and forwards
``onOpen`` / ``onMessage`` / ``onClose``.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.types import ConnectionDeny

from ucs.iserver.processor import Controller, IServer
from ucs.web.options import WebOptions
from ucs.web.heartbeat import Heartbeat
from ucs.web.protocol import (SocketTransport, UpgradedResource, WatchedProtocol, client_ip, peer_ip,
                              socket_options)


class _Transport(SocketTransport):
    __slots__ = ()

    def send(self, data: bytes) -> None:
        self._proto.sendMessage(data, False)


class IServerProtocol(WatchedProtocol):
    factory: IServerFactory
    controller: Controller | None = None
    _host: str = ""
    _client: str | None = None

    def onConnect(self, request: Any) -> None:
        origin = request.headers.get("origin")
        host = request.headers.get("host") or ""
        if not self.factory.origin_allowed(origin, host, bool(getattr(self.factory, "isSecure", False))):
            raise ConnectionDeny(403, f"the origin {origin} may not use this UCS; add it to web.allowed_origins")
        self._host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        self._client = client_ip(peer_ip(self.transport), request.headers.get("x-forwarded-for"),
                                 self.factory.proxies)
        return None

    def onOpen(self) -> None:
        socket = _Transport(self, self._who)
        self.controller = Controller(self.factory.iserver, socket, self._client, self._host)
        self._watch(socket, self.controller)
        self.controller.opened()

    def _who(self) -> str:
        c = self.controller
        if c is None:
            return "-"
        if c.session is not None and c.session.user is not None:
            return f"Interaction Processor client {c.session.user.username}"
        return "Interaction Processor client"

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.controller is not None:
            self.controller.received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        controller, self.controller = self.controller, None
        self._unwatch()
        if controller is not None:
            controller.closed()


class IServerFactory(WebSocketServerFactory):
    protocol = IServerProtocol  # type: ignore[assignment]

    def __init__(self, iserver: IServer, options: WebOptions, heartbeat: Heartbeat,
                 origin_allowed: Any = None, *, server: str = "UCS") -> None:
        super().__init__(server=server)
        self.iserver = iserver
        self.heartbeat = heartbeat
        self.proxies = options.proxies
        self._origin_allowed = origin_allowed
        self.setProtocolOptions(**socket_options(options))

    def origin_allowed(self, origin: str | None, host: str | None, secure: bool) -> bool:
        if self._origin_allowed is None:
            return True
        return bool(self._origin_allowed(origin, host, secure))


#: The endpoint inside the web site (the HTTP idle timeout is off once upgraded).
IServerResource = UpgradedResource
