"""What every store operation shares: JSON as both back ends store it, and
``async def`` methods turned into Deferreds at the edge (timed for metrics)."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ucs.store.errors import StoreRefused

P = ParamSpec("P")
T = TypeVar("T")


def _deferred(f: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Deferred[T]]:
    """Make an ``async def`` method return a Deferred (which is also awaitable),
    timed for :attr:`Store.observe` when that is set."""
    operation = f.__name__

    @functools.wraps(f)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        observe = getattr(args[0], "observe", None)
        if observe is None:
            return Deferred.fromCoroutine(f(*args, **kwargs))
        # Metrics only: how long the database took, on the process's monotonic
        # clock (a fake reactor clock would time every operation as 0 s).
        start = time.perf_counter()
        d = Deferred.fromCoroutine(f(*args, **kwargs))

        def timed(result: Any) -> Any:
            observe(operation, "error" if isinstance(result, Failure) else "ok", time.perf_counter() - start)
            return result

        return d.addBoth(timed)

    return wrapper


def no_nul(value: Any) -> Any:
    """``value`` with NUL characters in its strings (keys too) replaced by U+FFFD.

    PostgreSQL cannot store NUL in text or JSONB; both back ends store the same
    thing, so a CDR reads back the same wherever it was saved.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {no_nul(k): no_nul(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [no_nul(v) for v in value]
    return value


def dumps(value: Any, what: str, field: str | None = None) -> str:
    try:
        return json.dumps(no_nul(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as e:
        raise StoreRefused(f"{what}: cannot be stored as JSON ({e})", field) from None
