"""What the benches share to wait on the reactor and to read percentiles."""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import Deferred


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
