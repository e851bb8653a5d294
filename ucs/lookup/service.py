"""The caller lookup: sources asked in order, then the plugins' transformer.

``LookupService.lookup(number)`` asks each source in turn; the first that
knows the number wins.  Its data then goes through the lookup transformer a
plugin may have set (seed 000, v4.39.0):
``transform(lookup_id, number, data) -> data``.  It is called for a miss too
(``data`` is ``{}``, ``lookup_id`` the last source asked), so a plugin can
name unknown callers.  If it raises, or returns something that is not a dict,
the original data is used and the problem logged.  It gets a copy of the
data, so a transformer that changes its argument and then fails leaves the
original intact.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ucs.error import InvalidDataInput, ProcessingError
from ucs.lookup.sources import Data, LookupSource

Transformer = Callable[[int, str, Data], Data]

#: Keys of the data that fill the call's own fields; the rest goes to ``call.data``.
FIELDS = ("name", "external_id")


@attrs.frozen
class LookupResult:
    #: The source that answered (or the last asked, on a miss); ``None`` without sources.
    lookup_id: int | None
    number: str
    data: Data

    @property
    def found(self) -> bool:
        return bool(self.data)

    @property
    def name(self) -> str:
        v = self.data.get("name")
        return "" if v is None else str(v)

    @property
    def external_id(self) -> str:
        v = self.data.get("external_id")
        return "" if v is None else str(v)

    @property
    def extra(self) -> Data:
        """What goes into the call's ``data``."""
        return {k: v for k, v in self.data.items() if k not in FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return {"lookup_id": self.lookup_id, "number": self.number, "name": self.name,
                "external_id": self.external_id, "data": self.extra}


class LookupService:
    log = Logger(namespace="ucs.lookup")

    def __init__(self, sources: Iterable[LookupSource] = ()) -> None:
        self.sources: list[LookupSource] = list(sources)
        self._transformer: tuple[Transformer, str | None] | None = None

    # -- seed 000: the lookup transformer --------------------------------------------

    def set_lookup_transformer(self, fn: Transformer, owner: str | None = None) -> None:
        """Set the transformer; one at a time (the same owner may replace its own)."""
        if not callable(fn):
            raise InvalidDataInput(f"the lookup transformer must be callable, not {type(fn).__name__}")
        if self._transformer is not None and self._transformer[1] != owner:
            by = f"plugin {self._transformer[1]}" if self._transformer[1] else "another component"
            raise ProcessingError(f"a lookup transformer is already set by {by}; only one is allowed")
        self._transformer = (fn, owner)

    def unset_lookup_transformer(self, owner: str | None = None) -> bool:
        if self._transformer is None or (owner is not None and self._transformer[1] != owner):
            return False
        self._transformer = None
        return True

    @property
    def transformer_owner(self) -> str | None:
        return self._transformer[1] if self._transformer is not None else None

    # -- looking up ------------------------------------------------------------------

    def lookup(self, number: str) -> Deferred[LookupResult]:
        return Deferred.fromCoroutine(self._lookup(number))

    async def _lookup(self, number: str) -> LookupResult:
        if not self.sources:
            return LookupResult(None, number, {})
        found: Data | None = None
        source_id = self.sources[-1].id
        for source in self.sources:
            try:
                found = await source.lookup(number)
            except Exception:
                self.log.failure("lookup source {source} failed on {number}", source=source.name, number=number)
                found = None
            if found:
                source_id = source.id
                break
        data = found or {}
        return LookupResult(source_id, number, self._transform(source_id, number, data))

    def _transform(self, lookup_id: int, number: str, data: Data) -> Data:
        if self._transformer is None:
            return data
        fn, owner = self._transformer
        try:
            result = fn(lookup_id, number, copy.deepcopy(data))
        except Exception:
            self.log.failure("the lookup transformer (plugin {plugin}) failed on {number}; "
                             "using the data as found", plugin=owner or "-", number=number)
            return data
        if not isinstance(result, dict):
            self.log.error("the lookup transformer (plugin {plugin}) returned {kind}, not a dict, for {number}; "
                           "using the data as found", plugin=owner or "-", kind=type(result).__name__,
                           number=number)
            return data
        return result

    def close(self) -> Deferred[None]:
        async def closing() -> None:
            for source in self.sources:
                await source.close()

        return Deferred.fromCoroutine(closing())
