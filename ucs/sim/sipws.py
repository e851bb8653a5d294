"""SIP over WebSocket (RFC 7118) for the simulated PBX: Asterisk's ``/ws`` on its
HTTP server, where WebRTC endpoints (a browser's JsSIP) register and call.

The protocol only frames: one WebSocket text message is one SIP message,
parsed here and handed to :class:`ucs.sim.webrtc.WebRTCPhones`, which
answers through :meth:`SIPWebSocket.send_sip`.  A client that does not ask for
the ``sip`` subprotocol is refused at the handshake; a message that is not
SIP is logged and dropped (there is nothing to answer it with).
"""

from __future__ import annotations

import logging
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.application import service
from twisted.internet.defer import gatherResults
from twisted.web.resource import Resource
from twisted.web.server import Site

from ucs.sim.sipmessage import MAX_MESSAGE, SIPMessage, SIPParseError, parse
from ucs.sim.webrtc import WebRTCPhones

log = logging.getLogger(__name__)

SUBPROTOCOL = "sip"


class SIPWebSocket(WebSocketServerProtocol):
    """One browser's SIP WebSocket."""

    factory: SIPWebSocketFactory
    transport: Any  # a TCP transport: getPeer

    def onConnect(self, request: Any) -> str:
        if SUBPROTOCOL not in request.protocols:
            raise ConnectionDeny(400, "a SIP WebSocket (RFC 7118) needs the 'sip' subprotocol "
                                      f"(Sec-WebSocket-Protocol: sip); asked for: {request.protocols or 'none'}")
        return SUBPROTOCOL

    def onOpen(self) -> None:
        self.factory.phones.opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        try:
            msg = parse(payload)
        except SIPParseError as e:
            log.warning("ucs.sim SIP WebSocket from %s: not a SIP message (%s)", self.peer, e)
            return
        try:
            self.factory.phones.received(self, msg)
        except Exception:  # nothing a browser sends may take the simulator down
            log.exception("ucs.sim SIP WebSocket: %s %s", msg.method or msg.status, msg.get("Call-ID"))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.phones.closed(self)

    def send_sip(self, message: SIPMessage) -> None:
        self.sendMessage(message.serialize().encode(), isBinary=False)

    def peer_address(self) -> tuple[str, int]:
        peer = self.transport.getPeer()
        return str(peer.host), int(peer.port)


class SIPWebSocketFactory(WebSocketServerFactory):
    protocol = SIPWebSocket  # type: ignore[assignment]

    def __init__(self, phones: WebRTCPhones) -> None:
        super().__init__()
        self.phones = phones
        self.setProtocolOptions(maxMessagePayloadSize=MAX_MESSAGE, autoPingInterval=30, autoPingTimeout=10)


class SIPWebSocketService(service.Service):
    """The simulator's HTTP server with the SIP WebSocket at ``/ws``: :attr:`url` once listening."""

    def __init__(self, sim: Any, reactor: Any = None, *, port: int = 0, interface: str = "127.0.0.1") -> None:
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.reactor = reactor
        self.sim = sim
        self.interface = interface
        self._port_number = port
        self._listening: Any = None
        self.phones: WebRTCPhones | None = None

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:<port>/ws``: what a WebRTC line's ``ws_url`` is."""
        return f"ws://{self.interface}:{self.port}/ws"

    @property
    def port(self) -> int:
        if self._listening is None:
            return self._port_number
        return int(self._listening.getHost().port)

    def start_listening(self) -> None:
        if self._listening is not None:
            return
        if self.phones is None:
            self.phones = WebRTCPhones(self.sim, self.reactor)
        root = Resource()
        root.putChild(b"ws", WebSocketResource(SIPWebSocketFactory(self.phones)))
        self._listening = self.reactor.listenTCP(self._port_number, Site(root), interface=self.interface)
        self._port_number = self.port
        self.phones.host = f"{self.interface}:{self.port}"

    def startService(self) -> None:
        super().startService()
        self.start_listening()
        log.info("ucs.sim: SIP over WebSocket for the WebRTC lines at %s", self.url)

    def stopService(self) -> Any:
        super().stopService()
        listening, self._listening = self._listening, None
        waits: list[Any] = []
        if self.phones is not None:
            for conn in list(self.phones._connections.values()):
                conn.dropConnection(abort=True)
            waits.append(self.phones.stop())
            self.phones = None
        if listening is not None:
            waits.append(listening.stopListening())
        return gatherResults(waits, consumeErrors=True)
