"""The Interaction Processor's WebSocket: frames in and out, nothing else.

Each connection gets a :class:`ucs.iserver.processor.Controller`; this module
only checks the origin (as the agent bar's endpoint does), and forwards
``onOpen`` / ``onMessage`` / ``onClose``.
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny

from ucs.iserver.processor import Controller, IServer
from ucs.web.options import WebOptions
from ucs.web.protocol import ProducerAdapter, SocketTransport, peer_ip


class _Transport(SocketTransport):
    def send(self, data: bytes) -> None:
        self._proto.sendMessage(data, False)


class IServerProtocol(WebSocketServerProtocol):
    factory: IServerFactory
    controller: Controller | None = None
    _host: str = ""

    def onConnect(self, request: Any) -> None:
        origin = request.headers.get("origin")
        host = request.headers.get("host") or ""
        if not self.factory.origin_allowed(origin, host, bool(getattr(self.factory, "isSecure", False))):
            raise ConnectionDeny(403, f"the origin {origin} may not use this UCS; add it to web.allowed_origins")
        self._host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        return None

    def onOpen(self) -> None:
        self.controller = Controller(self.factory.iserver, _Transport(self), peer_ip(self.transport), self._host)
        transport: Any = self.transport
        if transport is not None:
            if getattr(transport, "producer", None) is not None:
                transport.unregisterProducer()  # Twisted Web's HTTP channel, from before the upgrade
            transport.registerProducer(ProducerAdapter(self.controller), True)
        self.controller.opened()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.controller is not None:
            self.controller.received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        controller, self.controller = self.controller, None
        if controller is not None:
            controller.closed()
            transport: Any = self.transport
            if transport is not None and getattr(transport, "producer", None) is not None:
                try:
                    transport.unregisterProducer()
                except Exception:
                    pass


class IServerFactory(WebSocketServerFactory):
    protocol = IServerProtocol  # type: ignore[assignment]

    def __init__(self, iserver: IServer, options: WebOptions, origin_allowed: Any = None, *,
                 server: str = "UCS") -> None:
        super().__init__(server=server)
        self.iserver = iserver
        self._origin_allowed = origin_allowed
        self.setProtocolOptions(
            autoPingInterval=options.ping_interval,
            autoPingTimeout=options.ping_timeout,
            maxMessagePayloadSize=options.max_frame_size,
            maxFramePayloadSize=options.max_frame_size,
            openHandshakeTimeout=options.open_handshake_timeout,
            closeHandshakeTimeout=5,
            failByDrop=False,
            maxConnections=options.max_connections,
            webStatus=False,
        )

    def origin_allowed(self, origin: str | None, host: str | None, secure: bool) -> bool:
        if self._origin_allowed is None:
            return True
        return bool(self._origin_allowed(origin, host, secure))


class IServerResource(WebSocketResource):
    """The endpoint inside the web site; the HTTP idle timeout is off once upgraded."""

    def render(self, request: Any) -> Any:
        channel = getattr(request, "channel", None)
        if channel is not None and hasattr(channel, "setTimeout"):
            channel.setTimeout(None)
        return super().render(request)
