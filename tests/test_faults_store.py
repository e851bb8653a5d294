"""The store unavailable for a while (issue 8): CDRs queue up, are written
when it returns, none lost.

The failure is a real one of the real PostgreSQL, kept to a database of the
test's own so the rest of the shared server is untouched: the database stops
accepting connections (``ALTER DATABASE … ALLOW_CONNECTIONS false``) and every
connection UCS has to it is killed (``pg_terminate_backend``), as when
PostgreSQL is stopped; later it accepts connections again, as when it is
started.  UCS must notice its connections are dead and open new ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_twisted
from conftest import POSTGRES_URL
from faultkit import Faults, until
from serverkit import working_agent
from twisted.internet import threads


def admin(sql: str, *params: Any) -> list[Any]:
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def in_db(db: str, sql: str) -> list[Any]:
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + db
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def database() -> Iterator[str]:
    """A database of this test's own on the shared PostgreSQL, dropped afterwards."""
    name = f"ucs_fault_{secrets.token_hex(5)}"
    pytest_twisted.blockon(threads.deferToThread(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        pytest_twisted.blockon(threads.deferToThread(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def postgres_down(db: str) -> int:
    """No new connection to ``db``, every existing one killed; how many were."""
    admin(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS false')
    rows = admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", db)
    return len(rows)


def postgres_up(db: str) -> None:
    admin(f'ALTER DATABASE "{db}" WITH ALLOW_CONNECTIONS true')


@pytest_twisted.ensureDeferred
async def test_cdrs_queue_while_postgresql_is_down_and_none_is_lost(tmp_path: Path, database: str) -> None:
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    f = Faults(tmp_path, store={"url": url, "pool_size": 2})
    try:
        await f.start()
        await working_agent(f.ucs, 1)
        await working_agent(f.ucs, 2)
        writer = f.ucs.get_cdr_writer()
        writer.retry = 0.05  # real seconds between attempts while the store is down

        f.sim.caller_calls("5000", "420777000001", hangup_after=2)
        await f.advance(5)
        await writer.flushed()
        assert writer.written == 1

        killed = await threads.deferToThread(postgres_down, database)
        assert killed >= 2  # UCS's pool
        try:
            uids = [f.sim.caller_calls("5000", f"42077700010{i}", hangup_after=2 + i).linkedid for i in range(2)]
            await f.advance(10)
            uids += [f.sim.caller_calls("5001", f"42077700020{i}", hangup_after=3).linkedid for i in range(3)]
            await f.advance(30)
            uids.append(f.sim.caller_calls("5000", "420777000300", hangup_after=1).linkedid)
            await f.advance(5)
            assert not f.ucs.get_call_tracker().active_calls()
            # every CDR is queued, in order; the writer keeps failing and retrying
            await until(lambda: writer.failures >= 3)
            assert [c["uniqueid"] for c in writer.pending] == uids
            assert writer.written == 1
            # the rest of UCS goes on: a status change is carried out on the PBX
            reg, agent = f.ucs.get_registry(), await working_agent(f.ucs, 3)
            await reg.call(agent, "agent.changeStatus", ["AUX", "Break"])
            await f.settle()
            f.assert_in_step()
        finally:
            await threads.deferToThread(postgres_up, database)

        await until(lambda: not writer.pending, timeout=10)
        await writer.flushed()
        assert writer.written == 1 + len(uids) and writer.failures == 0
        store = await f.ucs.when_store_open()
        for uid in uids:
            cdr = await store.get_cdr(uid)
            assert cdr is not None and cdr["disconnected"] is not None, uid
        rows = await threads.deferToThread(in_db, database, "SELECT count(*), count(DISTINCT uniqueid) FROM cdr")
        assert rows == [(1 + len(uids), 1 + len(uids))]
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_graceful_shutdown_writes_the_cdrs_still_queued(tmp_path: Path, database: str) -> None:
    """UCS is stopped while PostgreSQL is away with a CDR queued: the stop
    waits (up to 10 s) for the store, and the CDR is written before it closes."""
    url = POSTGRES_URL.rsplit("/", 1)[0] + "/" + database
    f = Faults(tmp_path, store={"url": url, "pool_size": 1})
    try:
        await f.start()
        await working_agent(f.ucs, 1)
        writer = f.ucs.get_cdr_writer()
        writer.retry = 0.05
        await threads.deferToThread(postgres_down, database)
        try:
            call = f.sim.caller_calls("5000", "420777000001", hangup_after=2)
            await f.advance(5)
            await until(lambda: writer.failures >= 2)
            assert [c["uniqueid"] for c in writer.pending] == [call.linkedid]
            stopping = f.ucs.service.stopService()
            await until(lambda: not f.ucs.get_web_service().running)  # the stop is under way, waiting
            assert writer.pending and not stopping.called
        finally:
            await threads.deferToThread(postgres_up, database)
        await stopping
        assert not writer.pending
        rows = await threads.deferToThread(in_db, database, "SELECT uniqueid, cause FROM cdr")
        assert rows == [(call.linkedid, 3)]
    finally:
        await f.stop()
        f.close_clock()
