"""The store unavailable for a while (issue 8): CDRs queue up, are written
when it returns, none lost.

PostgreSQL is really stopped and started: UCS's store is a private PostgreSQL
15 cluster of the test's own (:mod:`pgcluster`; the shared server on
127.0.0.1:5432 carries the rest of the suite and is never touched), and the
outage is ``pg_ctl stop -m fast`` (the server ends every session and shuts
down cleanly) or ``pg_ctl stop -m immediate`` (the server processes are killed,
as in a crash, and ``pg_ctl start`` runs crash recovery), then ``pg_ctl start``.
While it is down nothing listens on the port; UCS's connections are dead
without it knowing until it uses them. UCS must notice, open new ones once the
server is back, and lose no CDR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_twisted
from faultkit import Faults, until
from pgcluster import PgCluster, pg_cluster  # noqa: F401  (pg_cluster: a fixture)
from serverkit import working_agent
from twisted.internet import threads


def query(url: str, sql: str) -> list[Any]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(sql).fetchall()


def ucs_backends(url: str) -> set[int]:
    """The server processes of UCS's store connections."""
    rows = query(url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'ucs' AND pid <> pg_backend_pid()")
    return {r[0] for r in rows}


def refused(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError:
        return True
    return False


@pytest.mark.parametrize("mode", ["fast", "immediate"])
@pytest_twisted.ensureDeferred
async def test_cdrs_queue_while_postgresql_is_down_and_none_is_lost(
    tmp_path: Path, pg_cluster: PgCluster, mode: str  # noqa: F811
) -> None:
    url = pg_cluster.url
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

        before = await threads.deferToThread(ucs_backends, url)
        assert len(before) == 2  # UCS's pool
        await pg_cluster.stop(mode)
        try:
            assert await threads.deferToThread(refused, url)
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
            await pg_cluster.start()

        await until(lambda: not writer.pending, timeout=10)
        await writer.flushed()
        assert writer.written == 1 + len(uids) and writer.failures == 0
        store = await f.ucs.when_store_open()
        for uid in uids:
            cdr = await store.get_cdr(uid)
            assert cdr is not None and cdr["disconnected"] is not None, uid
        rows = await threads.deferToThread(query, url, "SELECT count(*), count(DISTINCT uniqueid) FROM cdr")
        assert rows == [(1 + len(uids), 1 + len(uids))]
        # UCS is on new connections to the restarted server
        after = await threads.deferToThread(ucs_backends, url)
        assert after and not after & before
    finally:
        await f.stop()
        f.close_clock()


@pytest_twisted.ensureDeferred
async def test_graceful_shutdown_writes_the_cdrs_still_queued(tmp_path: Path, pg_cluster: PgCluster) -> None:  # noqa: F811
    """UCS is stopped while PostgreSQL is stopped with a CDR queued: the stop
    waits (up to 10 s) for the store, and the CDR is written before it closes."""
    url = pg_cluster.url
    f = Faults(tmp_path, store={"url": url, "pool_size": 1})
    try:
        await f.start()
        await working_agent(f.ucs, 1)
        writer = f.ucs.get_cdr_writer()
        writer.retry = 0.05
        await pg_cluster.stop("fast")
        try:
            call = f.sim.caller_calls("5000", "420777000001", hangup_after=2)
            await f.advance(5)
            await until(lambda: writer.failures >= 2)
            assert [c["uniqueid"] for c in writer.pending] == [call.linkedid]
            stopping = f.ucs.service.stopService()
            await until(lambda: not f.ucs.get_web_service().running)  # the stop is under way, waiting
            assert writer.pending and not stopping.called
        finally:
            await pg_cluster.start()
        await stopping
        assert not writer.pending
        rows = await threads.deferToThread(query, url, "SELECT uniqueid, cause FROM cdr")
        assert rows == [(call.linkedid, 3)]
    finally:
        await f.stop()
        f.close_clock()
