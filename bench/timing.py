"""What the benches share: running one coroutine on the reactor, waiting on it,
reading percentiles."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred


def run_on_reactor(main: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    """Run the reactor until ``main()`` is done; its result (empty if it failed: the
    traceback is printed)."""
    out: dict[str, Any] = {}

    async def go() -> None:
        try:
            out.update(await main())
        finally:
            reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: ensureDeferred(go()).addErrback(lambda f: f.printTraceback()))
    reactor.run()  # type: ignore[attr-defined]
    return out


def sleep(seconds: float) -> Deferred[None]:
    """Real time passing on the reactor (a bench paces real traffic; tests never do this)."""
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
    return d


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; NaN for none."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]
