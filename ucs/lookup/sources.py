"""Where caller names come from: a static table and an HTTP JSON service.

A source has an integer ``id`` (what seed 000's lookup transformer gets as
``lookup_id``), a ``name`` for the log, and ``lookup(number)``, which fires
with the data found — a dict such as ``{"name": "Our Customer",
"external_id": "C-17", "companies": [...]}`` — or ``None`` when the number is
unknown.  A source that fails (no answer in time, an HTTP error, a body that
is not JSON) logs why and fires with ``None``: a lookup never delays or stops
a call.

The keys ``name`` and ``external_id`` fill the call's fields of the same
names; every other key goes into the call's ``data`` (seed 002).
"""

from __future__ import annotations

import collections
import copy
import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers

Data = dict[str, Any]


class LookupSource(Protocol):
    id: int
    name: str

    def lookup(self, number: str) -> Deferred[Data | None]: ...

    def close(self) -> Deferred[None]: ...


class StaticSource:
    """A fixed table: number → data, given inline or read from a CSV file whose
    header names the columns (``number`` is the key; ``name``, ``external_id``
    and any other column become the data)."""

    def __init__(self, id: int, table: Mapping[str, Mapping[str, Any]], name: str = "") -> None:
        self.id = id
        self.name = name or f"static {id}"
        self._table: dict[str, Data] = {}
        for number, data in table.items():
            if not isinstance(data, Mapping):
                raise ValueError(f"lookup source {self.name}: the entry for {number!r} must be a table "
                                 f"(name, external_id, ...), not {type(data).__name__}")
            self._table[str(number)] = dict(data)

    @classmethod
    def from_csv(cls, id: int, path: str | Path, name: str = "") -> StaticSource:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or "number" not in reader.fieldnames:
                raise ValueError(f"{path}: the first line must name the columns, one of them 'number'")
            table = {row.pop("number"): {k: v for k, v in row.items() if k} for row in reader}
        return cls(id, table, name or f"static {id} ({Path(path).name})")

    def __len__(self) -> int:
        return len(self._table)

    def lookup(self, number: str) -> Deferred[Data | None]:
        found = self._table.get(number)
        return succeed(copy.deepcopy(found) if found is not None else None)

    def close(self) -> Deferred[None]:
        return succeed(None)


class HTTPClient(Protocol):
    """What :class:`HTTPSource` needs of ``treq.client.HTTPClient``."""

    def request(self, method: str, url: Any, *, headers: Any = None) -> Any: ...


class TooLarge(Exception):
    pass


class HTTPSource:
    """A JSON web service: ``GET url`` with ``{number}`` replaced by the
    (URL-quoted) number.

    200 with a JSON object (or a list, whose first object is taken) is a hit;
    404, 204, ``null``, ``{}`` or ``[]`` a miss.  Hits are cached for
    ``cache_ttl`` seconds, misses for ``miss_ttl``, at most ``cache_size``
    numbers (the least recently used go first); failures are not cached.
    Lookups of a number already being looked up share the one request.
    ``fields`` maps the call's fields to keys of the answer, dotted for nested
    objects (``{"name": "contact.fullName", "external_id": "id"}``).
    """

    log = Logger(namespace="ucs.lookup")

    def __init__(
        self,
        id: int,
        url: str,
        *,
        reactor: Any,
        clock: Any = None,
        timeout: float = 2.0,
        cache_ttl: float = 300.0,
        miss_ttl: float = 60.0,
        cache_size: int = 10_000,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
        max_bytes: int = 1 << 20,
        name: str = "",
        client: HTTPClient | None = None,
    ) -> None:
        if "{number}" not in url:
            raise ValueError(f"lookup source {id}: url {url!r} must contain {{number}}")
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"lookup source {id}: url {url!r} must start with http:// or https://")
        self.id = id
        self.url = url
        self.name = name or f"http {id}"
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.miss_ttl = miss_ttl
        self.cache_size = cache_size
        self.max_bytes = max_bytes
        self.fields = dict(fields or {})
        self._headers = Headers({"Accept": ["application/json"]})
        for k, v in (headers or {}).items():
            self._headers.setRawHeaders(k, [v])
        self._clock = clock if clock is not None else reactor
        self._pool: Any = None
        if client is None:  # treq's HTTPClient
            import treq.client
            from twisted.web.client import Agent, HTTPConnectionPool

            self._pool = HTTPConnectionPool(reactor, persistent=True)
            self._pool.maxPersistentPerHost = 4
            client = treq.client.HTTPClient(Agent(reactor, connectTimeout=timeout, pool=self._pool))
        assert client is not None
        self._client: HTTPClient = client
        self._cache: collections.OrderedDict[str, tuple[float, Data | None]] = collections.OrderedDict()
        self._inflight: dict[str, list[Deferred[Data | None]]] = {}
        self.requests = 0  # HTTP requests made (the tests count cache hits with it)

    def url_for(self, number: str) -> str:
        return self.url.replace("{number}", quote(number, safe=""))

    def lookup(self, number: str) -> Deferred[Data | None]:
        now = self._clock.seconds()
        cached = self._cache.get(number)
        if cached is not None:
            expires, data = cached
            if expires > now:
                self._cache.move_to_end(number)
                return succeed(copy.deepcopy(data))
            del self._cache[number]
        d: Deferred[Data | None] = Deferred()
        waiters = self._inflight.get(number)
        if waiters is not None:
            waiters.append(d)
            return d
        self._inflight[number] = [d]
        self._fetch(number).addBoth(self._done, number)
        return d

    def _fetch(self, number: str) -> Deferred[Data | None]:
        d = Deferred.fromCoroutine(self._request(number))
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            d.cancel()

        timer = self._clock.callLater(self.timeout, expire)

        def settle(result: Any) -> Any:
            if timer.active():
                timer.cancel()
            if expired and isinstance(result, Failure):
                # The agent wraps the cancellation (ResponseNeverReceived…): say what happened.
                return Failure(TimeoutError(f"no answer in {self.timeout:g} s"))
            return result

        return d.addBoth(settle)

    async def _request(self, number: str) -> Data | None:
        self.requests += 1
        response = await self._client.request("GET", self.url_for(number), headers=self._headers)
        if response.code in (404, 204):
            return None
        if response.code != 200:
            raise RuntimeError(f"HTTP {response.code}")
        if response.length is not None and isinstance(response.length, int) and response.length > self.max_bytes:
            raise TooLarge(f"the answer is {response.length} bytes; at most {self.max_bytes}")
        import treq

        chunks: list[bytes] = []
        size = 0

        def collect(chunk: bytes) -> None:
            nonlocal size
            size += len(chunk)
            if size > self.max_bytes:
                raise TooLarge(f"the answer is over {self.max_bytes} bytes")
            chunks.append(chunk)

        await treq.collect(response, collect)
        body = b"".join(chunks)
        if not body.strip():
            return None
        try:
            answer = json.loads(body)
        except ValueError as e:
            raise ValueError(f"the answer is not JSON ({e})") from None
        if isinstance(answer, list):
            answer = next((a for a in answer if isinstance(a, dict)), None)
        if answer is None or answer == {}:
            return None
        if not isinstance(answer, dict):
            raise ValueError(f"the answer is {type(answer).__name__}, not a JSON object")
        return self._map(answer)

    def _map(self, answer: Data) -> Data:
        data = dict(answer)
        for field, path in self.fields.items():
            value: Any = answer
            for part in path.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                data[field] = value
        return data

    def _done(self, result: Data | None | Failure, number: str) -> None:
        waiters = self._inflight.pop(number, [])
        if isinstance(result, Failure):
            if result.check(TimeoutError, CancelledError):
                self.log.warn("lookup source {source}: no answer for {number} in {timeout:g} s",
                              source=self.name, number=number, timeout=self.timeout)
            else:
                self.log.warn("lookup source {source}: lookup of {number} failed: {problem}",
                              source=self.name, number=number, problem=result.getErrorMessage() or result.type)
            data = None
        else:
            data = result
            ttl = self.cache_ttl if data is not None else self.miss_ttl
            if ttl > 0 and self.cache_size > 0:
                self._cache[number] = (self._clock.seconds() + ttl, data)
                self._cache.move_to_end(number)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        for d in waiters:
            d.callback(copy.deepcopy(data))

    def clear_cache(self) -> None:
        self._cache.clear()

    def close(self) -> Deferred[None]:
        if self._pool is not None:
            closed: Deferred[None] = self._pool.closeCachedConnections()
            return closed
        return succeed(None)


def build_source(spec: Mapping[str, Any], *, reactor: Any, clock: Any = None,
                 base: Path | None = None) -> LookupSource:
    """A source from one ``[[lookup.sources]]`` table; ``ValueError`` naming the key when wrong.

    Keys: ``id`` (int, required), ``type`` (``http`` | ``static``), ``name``;
    for ``http``: ``url`` (with ``{number}``), ``timeout``, ``cache_ttl``,
    ``miss_ttl``, ``cache_size``, ``headers`` (table), ``fields`` (table);
    for ``static``: ``table`` (number → table of fields) and/or ``file`` (CSV).
    """
    known_common = {"id", "type", "name"}
    known = {
        "http": known_common | {"url", "timeout", "cache_ttl", "miss_ttl", "cache_size", "headers", "fields"},
        "static": known_common | {"table", "file"},
    }
    kind = spec.get("type")
    if kind not in known:
        raise ValueError(f"type: {kind!r} is not accepted; use 'http' or 'static'")
    unknown = sorted(set(spec) - known[kind])
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown key for a {kind} source; accepted: {', '.join(sorted(known[kind]))}")
    sid = spec.get("id")
    if isinstance(sid, bool) or not isinstance(sid, int):
        raise ValueError(f"id: {sid!r} is not accepted; give an integer (the lookup_id plugins see)")
    name = _opt(spec, "name", str, "")

    if kind == "static":
        table: dict[str, Any] = {}
        file = _opt(spec, "file", str, "")
        if file:
            path = Path(file) if base is None or Path(file).is_absolute() else base / file
            try:
                table.update(StaticSource.from_csv(sid, path)._table)
            except OSError as e:
                raise ValueError(f"file: {file!r} cannot be read ({e.strerror})") from None
        inline = _opt(spec, "table", dict, {})
        for number, data in inline.items():
            if not isinstance(data, Mapping):
                raise ValueError(f"table.{number}: give a table of fields (name, external_id, ...)")
        table.update(inline)
        return StaticSource(sid, table, name)

    url = spec.get("url")
    if not isinstance(url, str) or "{number}" not in url or not url.startswith(("http://", "https://")):
        raise ValueError(f"url: {url!r} is not accepted; give an http(s) URL containing {{number}}")
    timeout = _number(spec, "timeout", 2.0, 0.05, 60)
    headers = _opt(spec, "headers", dict, {})
    fields = _opt(spec, "fields", dict, {})
    for what, table_ in (("headers", headers), ("fields", fields)):
        for k, v in table_.items():
            if not isinstance(v, str):
                raise ValueError(f"{what}.{k}: {v!r} is not accepted; give a string")
    return HTTPSource(
        sid, url, reactor=reactor, clock=clock, timeout=timeout,
        cache_ttl=_number(spec, "cache_ttl", 300.0, 0, 86400 * 7),
        miss_ttl=_number(spec, "miss_ttl", 60.0, 0, 86400 * 7),
        cache_size=int(_number(spec, "cache_size", 10_000, 0, 10_000_000)),
        headers=headers, fields=fields, name=name,
    )


def build_sources(specs: Sequence[Mapping[str, Any]], *, reactor: Any, clock: Any = None,
                  base: Path | None = None) -> list[LookupSource]:
    """The sources of ``[[lookup.sources]]``, in order; ``ValueError`` naming the
    entry and the key (``sources[1].url: …``), or a repeated id."""
    sources: list[LookupSource] = []
    seen: dict[int, int] = {}
    for i, spec in enumerate(specs):
        if not isinstance(spec, Mapping):
            raise ValueError(f"sources[{i}]: give a table (id, type, ...), not {type(spec).__name__}")
        try:
            source = build_source(spec, reactor=reactor, clock=clock, base=base)
        except ValueError as e:
            raise ValueError(f"sources[{i}].{e}") from None
        if source.id in seen:
            raise ValueError(f"sources[{i}].id: {source.id} is the id of sources[{seen[source.id]}] too; "
                             "give each source its own id")
        seen[source.id] = i
        sources.append(source)
    return sources


def _opt(spec: Mapping[str, Any], key: str, kind: type, default: Any) -> Any:
    value = spec.get(key, default)
    if not isinstance(value, kind):
        raise ValueError(f"{key}: {value!r} is not accepted; give a {kind.__name__}")
    return value


def _number(spec: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{key}: {value!r} is not accepted; give a number from {low:g} to {high:g}")
    return float(value)

