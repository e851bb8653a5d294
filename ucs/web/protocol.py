"""The agent bar's WebSocket protocol: frames in and out, nothing else.

Every decision (origins, requests, sessions, events) belongs to the
:class:`ucs.web.hub.Hub` and the per-connection :class:`ucs.web.connection.Connection`.

For speed it reads autobahn's private ``send_queue`` (frames autobahn holds
unsent; checked against autobahn 26.11.1) and replaces the module's ``pformat``;
``tests/test_pinned_internals.py`` fails loudly if an upgrade changes the first.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

import autobahn.websocket.protocol as _autobahn_protocol
from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger

from ucs.api.remember import cookie_token
from ucs.web.connection import Connection
from ucs.web.heartbeat import Heartbeat
from ucs.web.hub import Hub
from ucs.web.messages import Outgoing
from ucs.web.options import WebOptions
from ucs.web.writethrough import write_through

# autobahn pretty-prints its configuration for a debug line on every new
# connection, whether or not debug is logged: 1.5 ms a connection, most of
# what accepting a connection cost UCS in a reconnect storm of 2,000 bars.
# ``repr`` says the same on one line, in a thirtieth of the time.
_autobahn_protocol.pformat = repr  # type: ignore[assignment]


def peer_ip(transport: Any) -> str | None:
    """The client's IP address as the socket gives it (never a header): what login
    throttling and ``identifyIP`` use.  IPv4-mapped IPv6 addresses become IPv4."""
    try:
        host = transport.getPeer().host
    except Exception:
        return None
    return _address(str(host)) or str(host)


def _address(text: str) -> str | None:
    """``text`` as an IP address in its usual form (IPv4-mapped IPv6 as IPv4), or ``None``."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def client_ip(peer: str | None, forwarded: str | None, proxies: Sequence[Any]) -> str | None:
    """The client's address: the socket's, or — when the socket comes from a trusted
    proxy — the right-most address of ``X-Forwarded-For`` that is not a trusted proxy
    itself (the ones left of it are whatever the client claimed).  A hop that is not
    an IP address ends the walk: the address before it counts."""
    if not proxies or peer is None or not forwarded or not _trusted(peer, proxies):
        return peer
    client = peer
    for hop in reversed(forwarded.split(",")):
        ip = _hop_ip(hop.strip())
        if ip is None:
            return client
        client = ip
        if not _trusted(ip, proxies):
            return ip
    return client  # every hop a proxy: the first of them


def _trusted(ip: str, proxies: Sequence[Any]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr.version == net.version and addr in net for net in proxies)


def _hop_ip(hop: str) -> str | None:
    """An ``X-Forwarded-For`` entry as an address (``[v6]:port`` and ``v4:port`` too)."""
    if hop.startswith("[") and "]" in hop:
        hop = hop[1:hop.index("]")]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    return _address(hop)


class SocketTransport:
    """What a controller may do with its WebSocket: close, abort, and ping for the
    heartbeat (:class:`ucs.web.heartbeat.Beating`: when the client was last heard
    from and pinged).  Frames built once for many clients go straight to an idle
    socket (:mod:`ucs.web.writethrough`)."""

    log = Logger()
    # One per connection: no instance dict for the garbage collector to walk.
    __slots__ = ("_proto", "_who", "_write", "heard", "pinged")

    def __init__(self, proto: WebSocketServerProtocol, who: Callable[[], str] | None = None) -> None:
        self._proto = proto
        self._write = write_through(proto.transport)
        self._who = who
        self.heard = 0.0
        self.pinged: float | None = None

    def close(self, code: int, reason: str) -> None:
        if code == 1000 or 3000 <= code <= 4999:
            self._proto.sendClose(code, reason[:120])
        else:  # 1001 "going away" (UCS stops): autobahn's sendClose only takes application codes
            self._proto.sendCloseFrame(code, reason[:120].encode("utf-8"))

    def abort(self) -> None:
        self._proto.dropConnection(abort=True)

    def _writer(self) -> Callable[[bytes], None] | None:
        """The write-through, while the socket is plain TCP, open, and autobahn has
        nothing of its own queued for it."""
        proto = self._proto
        if self._write is not None and proto.state == proto.STATE_OPEN and not proto.send_queue:
            return self._write
        return None

    def ping(self) -> None:
        if self._proto.state != self._proto.STATE_OPEN:
            return
        write = self._writer()
        if write is not None:
            write(PING)
        else:
            self._proto.sendPing()

    def timed_out(self, silent_for: float) -> None:
        self.log.info("WebSocket client {address} ({who}) silent for {s:.0f} s, no answer to a ping; dropped",
                      address=peer_ip(self._proto.transport), s=silent_for,
                      who=self._who() if self._who is not None else "-")
        self.abort()


#: A WebSocket ping frame with no payload (FIN, opcode 9, length 0): the same
#: two bytes for every connection's heartbeat.
PING = b"\x89\x00"


class _Transport(SocketTransport):
    """What a :class:`Connection` may do with its socket."""

    __slots__ = ()

    def send(self, out: Outgoing) -> None:
        if out.prepared is not None:
            # No compression is negotiated (the factory refuses it): a prepared frame is final.
            write = self._writer()
            if write is not None:
                write(out.prepared.payloadHybi)
            else:
                self._proto.sendPreparedMessage(out.prepared)
        else:
            self._proto.sendMessage(out.data, False)


class WatchedProtocol(WebSocketServerProtocol):
    """What the agent bar's and the Interaction Processor's WebSockets share: the
    socket is its controller's push producer, and the factory's heartbeat watches it
    (every frame in counts as a sign of life)."""

    factory: Any
    _socket: SocketTransport | None = None

    def _watch(self, socket: SocketTransport, controller: Any) -> None:
        self._socket = socket
        self.factory.heartbeat.add(socket)
        transport: Any = self.transport
        if transport is not None:
            if getattr(transport, "producer", None) is not None:
                transport.unregisterProducer()  # Twisted Web's HTTP channel, from before the upgrade
            transport.registerProducer(controller, True)  # an IPushProducer

    def _unwatch(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            self.factory.heartbeat.remove(socket)
        transport: Any = self.transport
        if transport is not None and getattr(transport, "producer", None) is not None:
            try:
                transport.unregisterProducer()
            except Exception:
                pass

    def dataReceived(self, data: bytes) -> None:
        socket = self._socket
        if socket is not None:
            socket.heard = self.factory.heartbeat.clock.seconds()
        super().dataReceived(data)


def socket_options(o: WebOptions) -> dict[str, Any]:
    """autobahn's options for a UCS WebSocket factory, from ``[web]``."""
    return dict(
        autoPingInterval=0,  # the heartbeat pings, one timer for all connections
        maxMessagePayloadSize=o.max_frame_size,
        maxFramePayloadSize=o.max_frame_size,
        openHandshakeTimeout=o.open_handshake_timeout,
        closeHandshakeTimeout=5,
        failByDrop=False,  # a bad client hears why (1009 too big, 1002 protocol error) before the close
        maxConnections=o.max_connections,
        perMessageCompressionAccept=lambda offers: None,  # prepared frames go out as they are
        webStatus=False,
    )


class AgentBarProtocol(WatchedProtocol):
    factory: AgentBarFactory
    connection: Connection | None = None
    _client: str | None = None
    #: The remember-me token of the ``HttpOnly`` cookie sent with the upgrade, for
    #: ``remember.login(null)`` (:mod:`ucs.api.remember`): page scripts cannot read it.
    _remembered: str | None = None

    def _secure(self) -> bool:
        return ISSLTransport.providedBy(self.transport) or bool(getattr(self.factory, "isSecure", False))

    def onConnect(self, request: Any) -> None:
        origin = request.headers.get("origin")
        host = request.headers.get("host")
        if not self.factory.hub.origin_allowed(origin, host, self._secure()):
            raise ConnectionDeny(403, f"the origin {origin} may not use this UCS; add it to web.allowed_origins")
        self._client = client_ip(peer_ip(self.transport), request.headers.get("x-forwarded-for"),
                                 self.factory.proxies)
        self._remembered = cookie_token(request.headers.get("cookie"))
        return None

    def onOpen(self) -> None:
        conn = Connection(self.factory.hub, _Transport(self, self._user), self._client)
        self.connection = conn
        self._watch(conn.transport, conn)  # type: ignore[arg-type]
        conn.opened()
        if self._remembered and conn.session is not None:
            conn.session.data["remember_cookie"] = self._remembered

    def _user(self) -> str:
        session = self.connection.session if self.connection is not None else None
        return session.user.username if session is not None and session.user is not None else "-"

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if self.connection is not None:
            self.connection.received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        conn, self.connection = self.connection, None
        self._unwatch()
        if conn is not None:
            conn.closed(code)


class AgentBarFactory(WebSocketServerFactory):
    protocol = AgentBarProtocol  # type: ignore[assignment]

    def __init__(self, hub: Hub, heartbeat: Heartbeat, *, server: str = "UCS") -> None:
        super().__init__(server=server)
        self.hub = hub
        self.heartbeat = heartbeat
        self.proxies = hub.options.proxies
        self.setProtocolOptions(**socket_options(hub.options))


class UpgradedResource(WebSocketResource):
    """A WebSocket endpoint inside the web site.  The HTTP channel's timeout is off
    for the upgraded connection (:mod:`ucs.web.site` stops it once the upgrade request
    is complete; switched off here too whatever the channel): the heartbeat watches it."""

    def render(self, request: Any) -> Any:
        channel = getattr(request, "channel", None)
        if channel is not None and hasattr(channel, "setTimeout"):
            channel.setTimeout(None)
        return super().render(request)

