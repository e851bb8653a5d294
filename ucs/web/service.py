"""The web server: the agent-bar WebSocket, ``operator.js``, the demo CRM page, ``/health``.

::

    /                          → redirect to /demo/
    /ws                        the agent-bar WebSocket (``ws_path``)
    /operator/operator-v4.59.0.js  the agent bar (seed 002), also /operator/operator.js and
                               /operator/operator-v4.0.0.js (the seed's integration snippet's URL)
    /operator/operator-v4.59.0.css its look, also /operator/operator.css and operator-v4.0.0.css
    /demo/                     a demo CRM page that embeds the bar (with a CSP, not framable)
    /health                    JSON: up, version, connections
    /origin                    JSON: may the asking page's origin open the WebSocket (for the bar)
    /remember                  the remember-me cookie (``ucs.api.remember``; put by the container)

:class:`WebService` is a Twisted service: started, it listens on
``options.listen:options.port`` with backlog ``options.backlog`` (HTTPS/WSS when a
certificate is configured);
stopped, it tells every bar that UCS is going away and stops listening.
A client must send each HTTP request (the WebSocket upgrade too) within
``options.request_timeout`` or is dropped (:mod:`ucs.web.site`).
Other parts of UCS may hang their own resources on :attr:`WebService.root`
(``root.putChild(b"iserver", …)``) before it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import ssl
from twisted.logger import Logger
from twisted.web import pages
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request
from twisted.web.static import File
from twisted.web.util import Redirect

import ucs
from ucs.api.registry import Registry
from ucs.api.session import SessionManager
from ucs.web.hub import Hub
from ucs.web.options import SOMAXCONN_PATH, WebOptions, somaxconn
from ucs.web.heartbeat import Heartbeat
from ucs.web.protocol import AgentBarFactory, UpgradedResource
from ucs.web.site import DeadlineSite

#: The agent bar's version: the server's (one scheme, README "Versions").
BAR_VERSION = ucs.__version__
#: The bundle's file name: seed 002's integration snippet loads ``operator-v4.0.0.js``.
BAR_FILE = "operator-v4.0.0"

STATIC = Path(__file__).resolve().parent / "static"

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


class StaticFiles(File):
    """Files of one directory: no directory listings, UTF-8 types, revalidated on each load."""

    contentTypes = dict(File.contentTypes, **_TYPES)

    def directoryListing(self) -> IResource:
        return pages.forbidden("directory listings are not served")

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-content-type-options", b"nosniff")
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return super().render_GET(request)

    #: Headers added to every file's response (see :class:`DemoFiles`).
    headers: dict[bytes, bytes] = {}

    def getChild(self, path: bytes, request: Request) -> IResource:
        """A name no file can have (a NUL byte: ``/demo/%00``) is a 404, not the 500
        of ``os.stat`` failing on it."""
        try:
            return super().getChild(path, request)  # type: ignore[no-any-return]
        except (ValueError, OSError):
            return pages.notFound("No Such Resource", "No such file.")

    def createSimilarFile(self, path: str) -> File:
        f = super().createSimilarFile(path)
        f.__class__ = self.__class__
        return f


class DemoFiles(StaticFiles):
    """The demo CRM page: UCS's own page, so it may not be framed by another site,
    and runs only its own scripts and styles, from UCS (a script injected into it
    cannot run, and could not send what it read anywhere else).  ``operator.js``
    has no such headers: CRMs embed it in their own pages, on their own origins."""

    headers = {
        b"content-security-policy": (
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
            b"frame-ancestors 'none'"),
        b"x-frame-options": b"DENY",
        b"referrer-policy": b"no-referrer",
    }

    #: The WebSocket URLs the page may connect to besides UCS itself: the directory's
    #: WebRTC lines' PJSIP transports, which the bar's softphone registers over.
    connect_sources: Callable[[], Iterable[str]] | None = None

    def render_GET(self, request: Request) -> Any:
        extra = sorted({u for u in self.connect_sources() if _CSP_SOURCE.match(u)}) if self.connect_sources else []
        if extra:
            csp = DemoFiles.headers[b"content-security-policy"].replace(
                b"connect-src 'self';", b"connect-src 'self' " + " ".join(extra).encode("ascii") + b";")
            self.headers = {**DemoFiles.headers, b"content-security-policy": csp}
        return super().render_GET(request)

    def createSimilarFile(self, path: str) -> File:
        f = super().createSimilarFile(path)
        f.connect_sources = self.connect_sources  # type: ignore[attr-defined]
        return f


#: A URL that may go into the demo page's CSP as it is (no space, quote, semicolon or comma).
_CSP_SOURCE = re.compile(r"wss?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%-]*)?\Z")


class Health(Resource):
    isLeaf = True

    def __init__(self, info: Callable[[], dict[str, Any]]) -> None:
        super().__init__()
        self._info = info

    def render_GET(self, request: Request) -> bytes:
        try:
            body = self._info()
        except Exception as e:  # a health check must answer, whatever broke
            body = {"status": "error", "error": str(e)}
        request.setResponseCode(200 if body.get("status") == "ok" else 503)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(body, default=str).encode("utf-8")


class OriginCheck(Resource):
    """``/origin``: whether the page asking may open the agent-bar WebSocket.

    A browser tells a page nothing of why a WebSocket was refused (a 403 at the
    handshake is a bare close, code 1006), so a bar whose connection never opened
    asks here, with an ordinary cross-origin ``fetch`` (the browser sends the
    page's ``Origin``), and can say that this page's origin is not allowed
    instead of "Connecting…" forever.  It tells what the refusal itself tells,
    so any page may read it (``Access-Control-Allow-Origin: *``, no cookies)."""

    isLeaf = True

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub

    def render_GET(self, request: Request) -> bytes:
        # Browsers send no Origin with a same-origin GET (a page UCS serves under a name
        # it does not allow): the bar then says which page it is, ``?origin=``.
        args: dict[bytes, list[bytes]] = request.args or {}
        origin = request.getHeader("origin") or _first(args.get(b"origin"))
        host = request.getHeader("host")
        allowed = self._hub.origin_allowed(origin, host, request.isSecure())
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"access-control-allow-origin", b"*")
        return json.dumps({"origin": origin, "allowed": allowed}).encode("utf-8")


def _first(values: list[bytes] | None) -> str | None:
    return values[0].decode("utf-8", "replace")[:300] if values else None


class Root(Resource):
    def render_GET(self, request: Request) -> bytes:
        return Redirect(b"/demo/").render(request)  # type: ignore[no-any-return]

    def getChild(self, path: bytes, request: Request) -> IResource:
        if path == b"":
            return self
        return super().getChild(path, request)


def operator_files(static: Path = STATIC) -> StaticFiles:
    """``/operator/``: the bundle under its version, the seed's URL and unversioned."""
    files = StaticFiles(str(static / "operator"))
    for ext in ("js", "css"):
        bundle = static / "operator" / f"{BAR_FILE}.{ext}"
        for alias in (f"operator.{ext}", f"operator-v{BAR_VERSION}.{ext}"):
            files.putChild(alias.encode(), StaticFiles(str(bundle)))
    return files


def tls_options(cert_path: str, key_path: str) -> ssl.CertificateOptions:
    """Server TLS from a PEM certificate (the leaf first, then its chain) and a PEM key."""
    pem = Path(cert_path).read_text()
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", pem, re.S)
    if not blocks:
        raise ValueError(f"{cert_path}: no PEM certificate in it")
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    certs = [ssl.Certificate.loadPEM(b.encode("ascii")) for b in blocks]
    return ssl.CertificateOptions(
        privateKey=key,  # type: ignore[arg-type]
        certificate=certs[0].original,
        extraCertChain=[c.original for c in certs[1:]],
    )


class WebService(Service):
    """The agent bar's web server; see the module docstring.

    ``state`` is the state builder (``ucs.api.state.StateBuilder``: the bar's
    waiting-caller counts come from its ``waiting_callers(user_id)``);
    ``reactor`` listens and is the clock; ``health`` adds to ``/health``
    (a ``status`` other than ``"ok"`` turns it into a 503).  The hub hears the bus
    while the service runs; its owner also puts it among the call tracker's
    observers (``ucs.server``), so that each phone's bar follows its own leg of a
    call (a phone rung for a consultation inside a call that goes on).
    """

    log = Logger()

    def __init__(
        self,
        registry: Registry,
        sessions: SessionManager,
        bus: Any,
        state: Any,
        reactor: Any,
        options: WebOptions | None = None,
        *,
        version: str = "",
        health: Callable[[], dict[str, Any]] | None = None,
        static: Path = STATIC,
    ) -> None:
        if not version:
            version = ucs.__version__
        self.setName("web")
        self.options = options if options is not None else WebOptions()
        self._reactor = reactor
        self._health = health
        self.version = version
        # The hub frames shared messages with the factory built next (_prepare reads it late).
        self.hub = Hub(registry, sessions, bus, state, reactor, self.options, version=version,
                       prepare=self._prepare)
        self.heartbeat = Heartbeat(reactor, self.options.ping_interval, self.options.ping_timeout)
        self.factory = AgentBarFactory(self.hub, self.heartbeat, server=f"UCS/{version}")
        self.root = Root()
        self.root.putChild(b"operator", operator_files(static))
        self.demo = DemoFiles(str(static / "demo"))
        self.root.putChild(b"demo", self.demo)
        self.root.putChild(b"health", Health(self.health))
        self.root.putChild(b"origin", OriginCheck(self.hub))
        self._put(self.options.ws_path, UpgradedResource(self.factory))
        self.site = DeadlineSite(self.root, request_timeout=self.options.request_timeout, reactor=reactor,
                                 max_body=self.options.max_body_size)
        self.site.displayTracebacks = False
        self._listening: Any = None

    def _prepare(self, data: bytes) -> Any:
        return self.factory.prepareMessage(data, isBinary=False)

    def put(self, path: str, resource: Any) -> None:
        """Serve ``resource`` at ``path`` (``/iserver``, ``/metrics``) on this site;
        a path already served is refused, naming it."""
        parts = [p.encode() for p in path.strip("/").split("/")]
        node: Resource = self.root
        for part in parts:
            node = node.children.get(part)  # type: ignore[assignment]
            if node is None:
                break
        else:
            raise ValueError(f"{path} is served already (the agent bar's ws_path, /metrics, /health, /origin, "
                             "/remember, /operator and /demo are taken); choose another path")
        self._put(parts, resource)

    def _put(self, path: str | list[bytes], resource: Any) -> None:
        parts = [p.encode() for p in path.strip("/").split("/")] if isinstance(path, str) else path
        parent: Resource = self.root
        for part in parts[:-1]:
            child = parent.children.get(part)
            if child is None:
                child = Resource()
                parent.putChild(part, child)
            parent = child
        parent.putChild(parts[-1], resource)

    def health(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok", "version": self.version, "agentBar": BAR_VERSION,
                                "web": self.hub.stats()}
        if self._health is not None:
            body.update(self._health())
        return body

    # -- listening ------------------------------------------------------------------------

    def startService(self) -> None:
        o = self.options
        self.hub.start()
        self.heartbeat.start()
        cap = somaxconn()
        if cap is not None and o.backlog > cap:
            self.log.warn("web.backlog {backlog} is above the kernel's net.core.somaxconn ({cap}, "
                          "{path}): the kernel will use {cap}; raise net.core.somaxconn or lower "
                          "web.backlog", backlog=o.backlog, cap=cap, path=SOMAXCONN_PATH)
        if o.tls:
            self._listening = self._reactor.listenSSL(o.port, self.site, tls_options(o.tls_cert, o.tls_key),
                                                      backlog=o.backlog, interface=o.listen)
        else:
            self._listening = self._reactor.listenTCP(o.port, self.site, backlog=o.backlog, interface=o.listen)
        super().startService()
        self.log.info("agent bar: {url}demo/ (WebSocket {ws})", url=self.url, ws=self.ws_url)

    def stopService(self) -> Any:
        super().stopService()
        self.hub.close_all()
        self.hub.stop()
        self.heartbeat.stop()
        listening, self._listening = self._listening, None
        if listening is not None:
            return listening.stopListening()
        return None

    @property
    def port(self) -> int:
        """The port listened on (the real one when ``options.port`` is 0)."""
        if self._listening is None:
            return self.options.port
        return int(self._listening.getHost().port)

    @property
    def url(self) -> str:
        host = self.options.listen
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.options.tls else 'http'}://{host}:{self.port}/"

    @property
    def ws_url(self) -> str:
        return ("wss" + self.url[5:] if self.options.tls else "ws" + self.url[4:]).rstrip("/") + self.options.ws_path
