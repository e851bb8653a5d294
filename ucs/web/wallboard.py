"""The web parts of issue 17: the read-only queue wallboard page (``/wallboard/``,
plain HTML and JS that talk to the WebSocket API: ``wallboard.subscribe``, then the
``wallboard`` pushes) and the statistics as CSV over HTTP (``/stats.csv``).

``/stats.csv?kind=queue&from=2026-12-06&to=2026-12-07&interval=30`` needs HTTP
Basic authentication of a supervisor (or a superuser): the login goes through the
API's ``login`` (its throttling included) in a session of its own, closed after the
answer, and the rows through ``stats.export`` (its scope included).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from ucs.error import UCSError
from ucs.web.service import STATIC, DemoFiles


def wallboard_files(static: Path = STATIC) -> DemoFiles:
    return DemoFiles(str(static / "wallboard"))


def admin_files(static: Path = STATIC) -> DemoFiles:
    """The admin page (``/admin/``, issue 19): plain files over the same WebSocket API."""
    return DemoFiles(str(static / "admin"))


def _arg(request: Request, name: str, default: str = "") -> str:
    args: dict[bytes, list[bytes]] = request.args or {}
    values = args.get(name.encode())
    return values[0].decode("utf-8", "replace") if values else default


class StatsCSV(Resource):
    isLeaf = True

    def __init__(self, registry: Any, sessions: Any) -> None:
        super().__init__()
        self._registry = registry
        self._sessions = sessions

    def render_GET(self, request: Request) -> Any:
        header = request.getHeader("authorization") or ""
        scheme, _, encoded = header.partition(" ")
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except ValueError:
            username = password = ""
        if scheme.lower() != "basic" or not username:
            return self._fail(request, 401, "log in: HTTP Basic authentication of a supervisor")
        address = getattr(request.getClientAddress(), "host", None)
        session = self._sessions.create("http", address)
        args = [_arg(request, "kind", "queue"), _arg(request, "from"), _arg(request, "to"),
                _arg(request, "interval", "day")]

        async def run() -> None:
            try:
                await self._registry.call(session, "login", [username, password])
                result = await self._registry.call(session, "stats.export", args)
            except UCSError as e:
                self._fail(request, 401 if e.code == 401 else e.code, str(e), finish=True)
                return
            finally:
                self._sessions.close(session, "stats.csv answered")
            request.setHeader(b"content-type", b"text/csv; charset=utf-8")
            request.setHeader(b"content-disposition",
                              f'attachment; filename="ucs-{args[0]}-{args[1]}-{args[2]}-{args[3]}.csv"'.encode())
            request.setHeader(b"cache-control", b"no-store")
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(result["csv"].encode("utf-8"))
                request.finish()

        d = Deferred.fromCoroutine(run())
        d.addErrback(lambda f: self._fail(request, 500, "internal error", finish=True))
        return NOT_DONE_YET

    def _fail(self, request: Request, code: int, message: str, finish: bool = False) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        if code == 401:
            request.setHeader(b"www-authenticate", b'Basic realm="UCS statistics", charset="UTF-8"')
        body = (message + "\n").encode("utf-8")
        if finish:
            if not request.finished and not getattr(request, "_disconnected", False):
                request.write(body)
                request.finish()
        return body


def stats_resource(registry: Any, sessions: Any) -> StatsCSV:
    return StatsCSV(registry, sessions)
