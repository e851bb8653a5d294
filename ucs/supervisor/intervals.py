"""Figures by 15-minute interval, for agents and queues: what the statistics export
and the wallboard's "today" read.

A figure is a count or seconds, kept per ``(kind, subject, day, slot)``: ``kind``
``agent`` (subject: the user id) or ``queue`` (the queue's Asterisk name), ``day``
the ISO date and ``slot`` the minute of the day its 15-minute interval starts at,
both in the configured time zone.  Time spans are split at the interval
boundaries (:meth:`Intervals.add_span`); an event is counted in the interval it
happened in.  30- and 60-minute intervals and whole days are sums of these
(:func:`rollup`).  Plain state; the owner feeds it and saves :meth:`dirty` rows.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from ucs.agents.stats import Days

SLOT = 15 * 60

#: The figures of each kind, in the order of the CSV columns.
QUEUE_FIGURES = ("offered", "answered", "abandoned", "answered_in_sl", "talktime", "waittime", "abandonwait")
AGENT_FIGURES = ("answered", "talktime", "readytime", "auxtime", "acwtime")
FIGURES = {"queue": QUEUE_FIGURES, "agent": AGENT_FIGURES}

Key = tuple[str, str, str, int]


class Intervals:
    def __init__(self, days: Days) -> None:
        self.days = days
        self.rows: dict[Key, dict[str, float]] = {}
        #: Each subject's figures per day, kept as rows change (the wallboard reads them
        #: on every push: summing 96 rows of every subject each time would not do).
        self.totals: dict[tuple[str, str, str], dict[str, float]] = {}
        self._dirty: set[Key] = set()

    def where(self, ts: float) -> tuple[str, int]:
        """(day, slot) of an instant."""
        local = datetime.datetime.fromtimestamp(ts, self.days.zone)
        minute = local.hour * 60 + local.minute
        return local.date().isoformat(), minute - minute % 15

    def _next_boundary(self, ts: float) -> float:
        local = datetime.datetime.fromtimestamp(ts, self.days.zone)
        start = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
        return (start + datetime.timedelta(minutes=15)).timestamp()

    def add(self, kind: str, subject: str, figure: str, value: float, at: float) -> None:
        day, slot = self.where(at)
        key = (kind, subject, day, slot)
        row = self.rows.setdefault(key, {})
        row[figure] = row.get(figure, 0) + value
        total = self.totals.setdefault((kind, subject, day), {})
        total[figure] = total.get(figure, 0) + value
        self._dirty.add(key)

    def add_span(self, kind: str, subject: str, figure: str, start: float, end: float) -> None:
        """Seconds from ``start`` to ``end``, each part in its own interval."""
        t = start
        while t < end:
            boundary = min(self._next_boundary(t), end)
            self.add(kind, subject, figure, boundary - t, t)
            t = boundary

    def load(self, rows: Iterable[tuple[str, str, str, int, dict[str, Any]]]) -> None:
        for kind, subject, day, slot, figures in rows:
            row = {k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            old = self.rows.get((kind, subject, day, slot), {})
            self.rows[(kind, subject, day, slot)] = row
            total = self.totals.setdefault((kind, subject, day), {})
            for name in set(row) | set(old):
                total[name] = total.get(name, 0) + row.get(name, 0) - old.get(name, 0)

    def dirty(self) -> list[tuple[str, str, str, int, dict[str, float]]]:
        """The rows changed since the last call (to save), and forget them as changed."""
        keys, self._dirty = self._dirty, set()
        return [(*k, dict(self.rows[k])) for k in sorted(keys)]

    def day_total(self, kind: str, subject: str, day: str) -> dict[str, float]:
        return dict(self.totals.get((kind, subject, day), {}))

    def forget_before(self, day: str) -> None:
        """Drop the rows of days before ``day`` from memory (they are in the store)."""
        for key in [k for k in self.rows if k[2] < day and k not in self._dirty]:
            del self.rows[key]
        for total in [t for t in self.totals if t[2] < day and not any(k[:3] == t for k in self._dirty)]:
            del self.totals[total]


def rollup(rows: Iterable[tuple[str, str, int, dict[str, Any]]], interval: str) -> list[tuple[str, str, str, dict[str, float]]]:
    """``(subject, day, slot, figures)`` rows summed to ``interval`` (``15``, ``30``,
    ``60`` minutes or ``day``): ``(subject, day, start "HH:MM" or "", figures)``."""
    width = {"15": 15, "30": 30, "60": 60, "day": 1440}.get(interval)
    if width is None:
        raise ValueError(f"interval {interval!r}: give 15, 30, 60 or day")
    out: dict[tuple[str, str, int], dict[str, float]] = {}
    for subject, day, slot, figures in rows:
        start = slot - slot % width
        acc = out.setdefault((day, subject, start), {})
        for name, v in figures.items():
            if isinstance(v, (int, float)):
                acc[name] = acc.get(name, 0) + v
    return [(subject, day, "" if width == 1440 else f"{start // 60:02d}:{start % 60:02d}", figures)
            for (day, subject, start), figures in sorted(out.items())]
