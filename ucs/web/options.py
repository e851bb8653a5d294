"""What the web server needs to know: where it listens, whom it lets in, its limits.

:class:`WebOptions` is built from ``[web]`` (:meth:`WebOptions.from_config`);
options that ``[web]`` does not have (yet) keep the defaults below, so the
container can pass ``config.web`` as it is.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import attrs


def normalize_origin(origin: str) -> str:
    """``https://CRM.example.com:443/`` → ``https://crm.example.com`` (scheme, host, non-default port)."""
    origin = origin.strip()
    if origin in ("*", "null"):
        return origin
    parts = urlsplit(origin)
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    if not scheme or not host:
        return origin.lower().rstrip("/")
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None or (scheme, port) in (("http", 80), ("https", 443), ("ws", 80), ("wss", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def fixed_host(host: str) -> bool:
    """Whether ``host`` (a ``Host`` header: a name or an address, maybe with a port)
    reaches this machine in a way DNS cannot change: an IP address, or ``localhost``
    (browsers keep it on the loopback).  A page under any other name may have come
    from whoever owns that name — DNS rebinding: the attacker's name resolved to
    UCS for a moment, the page and its WebSocket then share an origin with it — so
    only ``allowed_origins`` lets such a page in."""
    try:
        name = urlsplit("//" + host.strip()).hostname or ""
    except ValueError:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


#: Where Linux keeps the cap on every listen backlog.
SOMAXCONN_PATH = "/proc/sys/net/core/somaxconn"


def somaxconn(path: str = SOMAXCONN_PATH) -> int | None:
    """The kernel's cap on a listen backlog (``net.core.somaxconn``); ``None`` where it
    cannot be read (not Linux)."""
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


@attrs.frozen
class WebOptions:
    """Options of :class:`ucs.web.WebService`; every size in bytes, every time in seconds."""

    listen: str = "127.0.0.1"
    port: int = 8080
    #: Listen backlog of the web port (``listen(2)``); Linux caps it at ``net.core.somaxconn``.
    backlog: int = 1024
    #: PEM certificate (chain) and key: HTTPS/WSS when set.
    tls_cert: str = ""
    tls_key: str = ""
    #: Origins (``https://crm.example.com``) allowed to open the WebSocket besides
    #: pages UCS serves under an IP address or ``localhost`` (:func:`fixed_host`);
    #: UCS's own pages under a host name need theirs listed; ``("*",)``: any.  A client sending no ``Origin``
    #: (not a browser) is let in: origins protect browsers' users, not servers.
    allowed_origins: tuple[str, ...] = ()
    #: Proxies whose ``X-Forwarded-For`` names the client (addresses or networks).
    trusted_proxies: tuple[str, ...] = ()
    #: URL path of the agent-bar WebSocket.
    ws_path: str = "/ws"
    #: Heartbeat: a WebSocket ping this often; no pong within ``ping_timeout`` drops the client.
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    #: A request larger than this gets an error reply (the message is not read further).
    max_request_size: int = 64 * 1024
    #: An HTTP request body larger than this is refused (413) before it is read; no
    #: UCS resource takes a body (:mod:`ucs.web.site`).
    max_body_size: int = 4096
    #: A frame or message larger than this closes the connection (1009): it is not even buffered.
    max_frame_size: int = 1024 * 1024
    #: Bytes a client that reads too slowly may have waiting for it before it is dropped.
    max_client_buffer: int = 1024 * 1024
    #: Requests one connection may have in progress at once.
    max_pending: int = 32
    #: Concurrent WebSocket connections (0: no limit).
    max_connections: int = 0
    #: How long a logged-in session waits for its client to reconnect (``session.resume``).
    resume_window: float = 120.0
    #: Waiting-caller counts are sent at most this often (changes in between are merged).
    coalesce_delay: float = 0.25
    #: Waiting-caller messages a second at most to one set of queues' agents.
    waiting_rate: int = 250
    open_handshake_timeout: float = 10.0
    #: A whole HTTP request (the WebSocket upgrade too) within this long of connecting or
    #: of the previous response, else the client is dropped (:mod:`ucs.web.site`).
    request_timeout: float = 10.0

    def __attrs_post_init__(self) -> None:
        if not self.ws_path.startswith("/"):
            raise ValueError(f"ws_path {self.ws_path!r} must start with '/'")
        if self.ws_path.rstrip("/") in ("", "/operator", "/demo", "/health", "/remember", "/origin"):
            raise ValueError(f"ws_path {self.ws_path!r} clashes with the static files; use e.g. '/ws'")
        if not 1 <= self.backlog <= 65535:
            raise ValueError(f"backlog {self.backlog!r} is out of range; use an integer 1-65535")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be set together")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"trusted_proxies: {proxy!r} is not an IP address or network; use "
                                 "addresses like '10.0.0.5' or networks like '10.0.0.0/24'") from None

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def proxies(self) -> tuple[Any, ...]:
        """``trusted_proxies`` as ``ipaddress`` networks."""
        return tuple(ipaddress.ip_network(p, strict=False) for p in self.trusted_proxies)

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(normalize_origin(o) for o in self.allowed_origins)

    @classmethod
    def from_config(cls, web: Any, **overrides: Any) -> WebOptions:
        """From ``config.web`` (:class:`ucs.config.WebConfig`): every field it has
        that this class knows; ``overrides`` win."""
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            if hasattr(web, field.name):
                values[field.name] = getattr(web, field.name)
        values.update(overrides)
        for name in ("allowed_origins", "trusted_proxies"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)
