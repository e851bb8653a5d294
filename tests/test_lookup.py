"""Caller lookup sources: a static table and an HTTP JSON service (a real
twisted.web server on 127.0.0.1), with its timeout and cache; the service's
order of sources and its transformer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_plugins_harness import LogCapture, logs_fixture  # noqa: F401
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ucs.error import ProcessingError
from ucs.lookup import HTTPSource, LookupService, StaticSource, build_source, build_sources

PEOPLE = {
    "420777123456": {"id": "C-17", "contact": {"fullName": "Our Customer"}, "companies": ["First", "Second"]},
    "420777000111": {"id": 42, "contact": {"fullName": "Jan Novák"}, "companies": ["Solo"]},
}


class CRM(Resource):
    """A CRM's lookup API: ``GET /caller/<number>``; can hold answers back."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.hold = False
        self.held: list[Any] = []
        self.special: dict[str, tuple[int, bytes]] = {}
        self.arrived: list[Deferred[None]] = []

    def render_GET(self, request: Any) -> Any:  # noqa: N802
        number = request.postpath[-1].decode()
        self.requests.append((number, {k.decode(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}))
        arrived, self.arrived = self.arrived, []
        for d in arrived:
            reactor.callLater(0, d.callback, None)
        if self.hold:
            self.held.append((request, number))
            return NOT_DONE_YET
        if number == "stream":  # no Content-Length: chunked
            for _ in range(3):
                request.write(b" " * 600)
            request.finish()
            return NOT_DONE_YET
        return self.answer(request, number)

    def answer(self, request: Any, number: str) -> bytes:
        if number in self.special:
            code, body = self.special[number]
            request.setResponseCode(code)
            return body
        person = PEOPLE.get(number)
        if person is None:
            request.setResponseCode(404)
            return b'{"error": "unknown"}'
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(person).encode()

    def release(self) -> None:
        held, self.held = self.held, []
        for request, number in held:
            if not request._disconnected:
                request.write(self.answer(request, number))
                request.finish()

    def next_request(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.arrived.append(d)
        return d


class Server:
    def __init__(self) -> None:
        self.crm = CRM()
        root = Resource()
        root.putChild(b"caller", self.crm)
        self.port: Any = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/caller/{{number}}"
        self.sources: list[HTTPSource] = []

    def source(self, clock: Clock, **kw: Any) -> HTTPSource:
        kw.setdefault("fields", {"name": "contact.fullName", "external_id": "id"})
        s = HTTPSource(1, self.url, reactor=reactor, clock=clock, **kw)
        self.sources.append(s)
        return s

    async def close(self) -> None:
        self.crm.hold = False
        self.crm.release()
        for s in self.sources:
            await s.close()
        await self.port.stopListening()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    pytest_twisted.blockon(Deferred.fromCoroutine(s.close()))


@pytest.fixture
def clock() -> Clock:
    c = Clock()
    c.advance(1_700_000_000)
    return c


# --- the static table --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_static_table_inline_and_from_csv(tmp_path: Path) -> None:
    table = StaticSource(2, {"420777123456": {"name": "Our Customer", "external_id": "C-17"}})
    found = await table.lookup("420777123456")
    assert found == {"name": "Our Customer", "external_id": "C-17"}
    found["name"] = "changed by a caller"
    assert (await table.lookup("420777123456"))["name"] == "Our Customer"
    assert await table.lookup("999") is None

    csv = tmp_path / "vip.csv"
    csv.write_text("number,name,external_id,tier\n420777000111,Jan Novák,42,gold\n", encoding="utf-8")
    source = build_source({"id": 3, "type": "static", "file": "vip.csv", "table": {"1": {"name": "One"}}},
                          reactor=reactor, base=tmp_path)
    assert await source.lookup("420777000111") == {"name": "Jan Novák", "external_id": "42", "tier": "gold"}
    assert await source.lookup("1") == {"name": "One"}


def test_source_specs_are_checked_naming_the_key(tmp_path: Path) -> None:
    bad = [
        ({"id": 1, "type": "ldap"}, "type: 'ldap' is not accepted"),
        ({"type": "static"}, "id: None is not accepted"),
        ({"id": 1, "type": "http", "url": "http://crm/lookup"}, "url: 'http://crm/lookup' is not accepted"),
        ({"id": 1, "type": "http", "url": "ftp://x/{number}"}, "url:"),
        ({"id": 1, "type": "http", "url": "http://x/{number}", "timeout": 0}, "timeout: 0 is not accepted"),
        ({"id": 1, "type": "http", "url": "http://x/{number}", "color": 1}, "color: unknown key for a http source"),
        ({"id": 1, "type": "http", "url": "http://x/{number}", "headers": {"A": 1}}, "headers.A: 1"),
        ({"id": 1, "type": "static", "table": {"1": "x"}}, "table.1: give a table"),
        ({"id": 1, "type": "static", "file": "missing.csv"}, "file: 'missing.csv' cannot be read"),
    ]
    for spec, message in bad:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            build_source(spec, reactor=reactor, base=tmp_path)
    good = {"id": 1, "type": "static", "table": {}}
    with pytest.raises(ValueError, match=r"^sources\[1\]\.url: "):
        build_sources([good, {"id": 2, "type": "http", "url": "x"}], reactor=reactor)
    with pytest.raises(ValueError, match=r"^sources\[1\]\.id: 1 is the id of sources\[0\] too"):
        build_sources([good, good], reactor=reactor)
    with pytest.raises(ValueError, match=r"^sources\[0\]: give a table"):
        build_sources(["x"], reactor=reactor)  # type: ignore[list-item]
    assert [s.id for s in build_sources([good, {**good, "id": 2}], reactor=reactor)] == [1, 2]


# --- HTTP ------------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_http_hit_miss_and_fields(server: Server, clock: Clock) -> None:
    source = server.source(clock, headers={"Authorization": "Bearer s3cret"})
    found = await source.lookup("420777123456")
    assert found is not None
    assert (found["name"], found["external_id"], found["companies"]) == ("Our Customer", "C-17", ["First", "Second"])
    number, headers = server.crm.requests[0]
    assert number == "420777123456" and headers["Authorization"] == "Bearer s3cret"
    assert headers["Accept"] == "application/json"
    assert await source.lookup("111") is None  # 404


@pytest_twisted.ensureDeferred
async def test_http_numbers_are_quoted(server: Server, clock: Clock) -> None:
    source = server.source(clock)
    assert source.url_for("+420 777/1?x") .endswith("/caller/%2B420%20777%2F1%3Fx")
    await source.lookup("+420777123456")
    assert server.crm.requests[-1][0] == "+420777123456"


@pytest_twisted.ensureDeferred
async def test_http_cache_hits_misses_expiry_and_size(server: Server, clock: Clock) -> None:
    source = server.source(clock, cache_ttl=300, miss_ttl=30, cache_size=2)
    await source.lookup("420777123456")
    await source.lookup("420777123456")
    await source.lookup("unknown")
    await source.lookup("unknown")
    assert source.requests == 2 and len(server.crm.requests) == 2
    clock.advance(31)  # the miss expires, the hit does not
    await source.lookup("unknown")
    await source.lookup("420777123456")
    assert source.requests == 3
    clock.advance(300)
    await source.lookup("420777123456")
    assert source.requests == 4
    # Bounded: the least recently used number goes first.
    await source.lookup("420777000111")  # cache: unknown(expired soon), 4207771234.., 4207770001..
    await source.lookup("unknown2")
    assert len(source._cache) == 2
    requests = source.requests
    await source.lookup("420777123456")  # evicted: asked again
    assert source.requests == requests + 1


@pytest_twisted.ensureDeferred
async def test_http_lookups_of_one_number_share_a_request(server: Server, clock: Clock) -> None:
    source = server.source(clock)
    server.crm.hold = True
    arrived = server.crm.next_request()
    first, second = source.lookup("420777123456"), source.lookup("420777123456")
    await arrived
    server.crm.release()
    assert (await first)["name"] == (await second)["name"] == "Our Customer"
    assert len(server.crm.requests) == 1


@pytest_twisted.ensureDeferred
async def test_http_timeout_gives_nothing_and_is_not_cached(server: Server, clock: Clock, logs: LogCapture) -> None:
    source = server.source(clock, timeout=2.0)
    server.crm.hold = True
    arrived = server.crm.next_request()
    d = source.lookup("420777123456")
    await arrived
    clock.advance(1.9)
    assert not d.called
    clock.advance(0.2)
    assert await d is None
    assert any("lookup source http 1: no answer for 420777123456 in 2 s" in t for t in logs.texts(LogLevel.warn)), \
        logs.texts(namespace="ucs.lookup")
    server.crm.hold = False
    server.crm.release()
    assert (await source.lookup("420777123456"))["name"] == "Our Customer"
    assert source.requests == 2


@pytest_twisted.ensureDeferred
async def test_http_failures_give_nothing(server: Server, clock: Clock, logs: LogCapture) -> None:
    source = server.source(clock, max_bytes=1000)
    crm = server.crm
    crm.special = {
        "500": (500, b"oops"),
        "notjson": (200, b"<html>"),
        "big": (200, b"[" + b'"x",' * 500 + b'"x"]'),
        "text": (200, b'"a string"'),
        "empty": (200, b""),
        "null": (200, b"null"),
        "list": (200, b'[{"name": "First of a list"}, {"name": "Second"}]'),
    }
    for number in ("500", "notjson", "big", "stream", "text", "empty", "null"):
        assert await source.lookup(number) is None, number
    assert (await source.lookup("list"))["name"] == "First of a list"
    warned = "\n".join(logs.texts(LogLevel.warn))
    assert "lookup of 500 failed: HTTP 500" in warned
    assert "lookup of notjson failed: the answer is not JSON" in warned
    assert "lookup of big failed: the answer is 2005 bytes; at most 1000" in warned
    assert "lookup of stream failed: the answer is over 1000 bytes" in warned
    assert "lookup of text failed: the answer is str, not a JSON object" in warned
    await source.lookup("500")  # failures are not cached
    assert [n for n, _ in crm.requests].count("500") == 2


# --- the service and its transformer ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_sources_in_order_first_hit_wins(server: Server, clock: Clock) -> None:
    vip = StaticSource(7, {"420777000111": {"name": "VIP Jan", "external_id": "V1"}})
    service = LookupService([vip, server.source(clock)])
    r = await service.lookup("420777000111")
    assert (r.lookup_id, r.name, r.external_id) == (7, "VIP Jan", "V1")
    r = await service.lookup("420777123456")
    assert (r.lookup_id, r.name, r.external_id, r.extra["companies"]) == (1, "Our Customer", "C-17", ["First", "Second"])
    r = await service.lookup("000")
    assert (r.lookup_id, r.found, r.data) == (1, False, {})
    assert (await LookupService([]).lookup("1")).lookup_id is None


@pytest_twisted.ensureDeferred
async def test_transformer_and_its_failures(logs: LogCapture) -> None:
    source = StaticSource(5, {"1": {"name": "Our Customer", "companies": ["First", "Second"]}})
    service = LookupService([source])
    seen: list[tuple[int, str, dict[str, Any]]] = []

    def seed(lookup_id: int, number: str, data: dict[str, Any]) -> dict[str, Any]:
        seen.append((lookup_id, number, dict(data)))
        if not data:
            return {"name": "Dang!"}
        prefix = "?" if len(data.get("companies", [])) > 1 else ""
        data["name"] = f"{prefix}{data['name']}"
        return data

    service.set_lookup_transformer(seed, owner="a")
    assert (await service.lookup("1")).name == "?Our Customer"
    assert (await service.lookup("2")).data == {"name": "Dang!"}
    assert seen == [(5, "1", {"name": "Our Customer", "companies": ["First", "Second"]}), (5, "2", {})]
    with pytest.raises(ProcessingError, match="already set by plugin a"):
        service.set_lookup_transformer(seed, owner="b")
    assert not service.unset_lookup_transformer(owner="b")

    def broken(lookup_id: int, number: str, data: dict[str, Any]) -> dict[str, Any]:
        data["name"] = "half-changed"
        raise KeyError("companies")

    service.set_lookup_transformer(broken, owner="a")  # the same owner replaces its own
    assert (await service.lookup("1")).name == "Our Customer"
    assert any("the lookup transformer (plugin a) failed on 1" in t for t in logs.texts(LogLevel.critical))
    service.set_lookup_transformer(lambda i, n, d: None, owner="a")  # type: ignore[arg-type,return-value]
    assert (await service.lookup("1")).name == "Our Customer"
    assert any("returned NoneType, not a dict" in t for t in logs.texts(LogLevel.error))
    assert service.unset_lookup_transformer(owner="a")
    assert (await service.lookup("1")).name == "Our Customer"
