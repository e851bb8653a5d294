"""The statistics by interval in the store (migration 3) on SQLite and PostgreSQL, a
migration merged below the highest (2, another branch's) still applied, and the
figures split at the 15-minute boundaries on an injected clock."""

from __future__ import annotations

import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest_twisted
from test_store import schema_rows
from twisted.internet import reactor, threads
from twisted.internet.task import Clock

from ucs.agents.stats import Days
from ucs.store import base as store_base
from ucs.store import open_store
from ucs.store.migrations import MIGRATIONS, Migration
from ucs.supervisor.intervals import Intervals, rollup


@pytest_twisted.ensureDeferred
async def test_stats_rows_round_trip_and_replace(store: Any) -> None:
    await store.stats_write([
        ("queue", "support", "2026-12-06", 600, {"offered": 2, "answered": 1, "talktime": 61.5}),
        ("queue", "support", "2026-12-06", 615, {"offered": 1, "abandoned": 1}),
        ("queue", "sales", "2026-12-07", 0, {"offered": 1}),
        ("agent", "7", "2026-12-06", 600, {"readytime": 900.0}),
    ])
    await store.stats_write([("queue", "support", "2026-12-06", 600, {"offered": 3, "answered": 2})])  # replaces
    rows = await store.stats_read("queue", "2026-12-06", "2026-12-06")
    assert rows == [("support", "2026-12-06", 600, {"offered": 3, "answered": 2}),
                    ("support", "2026-12-06", 615, {"offered": 1, "abandoned": 1})]
    assert [r[1] for r in await store.stats_read("queue", "2026-12-06", "2026-12-07")] == [
        "2026-12-06", "2026-12-06", "2026-12-07"]
    assert await store.stats_read("agent", "2026-12-06", "2026-12-06") == [("7", "2026-12-06", 600, {"readytime": 900.0})]
    # yesterday and today side by side, by hour
    hourly = rollup(await store.stats_read("queue", "2026-12-06", "2026-12-07"), "60")
    assert [(s, d, start, f.get("offered")) for s, d, start, f in hourly] == [
        ("support", "2026-12-06", "10:00", 4), ("sales", "2026-12-07", "00:00", 1)]


@pytest_twisted.ensureDeferred
async def test_a_migration_missing_below_the_highest_is_still_applied(store_url: str, monkeypatch: Any) -> None:
    """A database migrated by a build that had 1 and 3 but not 2 (two lines of work that
    met later) gets 2 when a build with all three opens it: migrations go by the numbers
    a database lacks, not only those above its highest."""
    full = MIGRATIONS
    monkeypatch.setattr(store_base, "MIGRATIONS", tuple(m for m in full if m.version != 2))
    s = await open_store(store_url, reactor)
    await s.close()
    every = [m.version for m in full]
    assert [r[0] for r in await threads.deferToThread(schema_rows, store_url)] == [v for v in every if v != 2]
    monkeypatch.setattr(store_base, "MIGRATIONS", full)
    s = await open_store(store_url, reactor)
    assert s.schema_version == every[-1]
    await s.close()
    assert [r[0] for r in await threads.deferToThread(schema_rows, store_url)] == every


def test_time_is_split_at_the_quarter_hours_in_the_zone() -> None:
    zone = ZoneInfo("Europe/Prague")
    start = datetime.datetime(2026, 12, 7, 9, 50, tzinfo=zone).timestamp()
    clock = Clock()
    clock.advance(start)
    iv = Intervals(Days("Europe/Prague"))
    iv.add_span("agent", "1", "readytime", clock.seconds(), clock.seconds() + 40 * 60)  # 9:50 → 10:30
    assert {k[3]: round(v["readytime"]) for k, v in iv.rows.items()} == {585: 600, 600: 900, 615: 900}
    iv.add("queue", "support", "answered", 1, start)
    assert iv.day_total("agent", "1", "2026-12-07") == {"readytime": 2400.0}
    saved = iv.dirty()
    assert len(saved) == 4 and iv.dirty() == []
    # across midnight: the next day's rows
    late = datetime.datetime(2026, 12, 7, 23, 55, tzinfo=zone).timestamp()
    iv.add_span("agent", "1", "auxtime", late, late + 600)
    assert iv.day_total("agent", "1", "2026-12-08") == {"auxtime": 300.0}
    assert [(d, start) for _, d, start, _ in rollup([(s, d, slot, f) for (_, s, d, slot), f in iv.rows.items()
                                                     if s == "1"], "day")] == [("2026-12-07", ""), ("2026-12-08", "")]
