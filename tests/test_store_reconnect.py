"""The PostgreSQL store after its server went away: dead connections are
noticed and replaced, and nothing fails once the server is back.

A connection the server ended (``pg_ctl stop``, ``pg_terminate_backend``) is
not known to be dead until it is used; the store then opens a new one and runs
the operation once more (every statement it runs is idempotent: upserts,
reads, deletes).  The restarts are real ones, of a private cluster
(:mod:`pgcluster`); the retry's limits are checked on the shared server.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import pytest_twisted
from pgcluster import PgCluster, pg_cluster  # noqa: F401  (pg_cluster: a fixture)
from twisted.internet import reactor, threads

from ucs.store import StoreError, open_store

POOL = 3


def ucs_backends(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'ucs' AND pid <> pg_backend_pid() ORDER BY pid"
        ).fetchall()
    return [r[0] for r in rows]


async def every_connection_works(store: Any, round_: int) -> None:
    """Sequential operations take the pool's connections in turn: each is used twice."""
    for i in range(2 * POOL):
        await store.kv_set("t", f"k{i}", {"round": round_, "i": i})
        assert await store.kv_get("t", f"k{i}") == {"round": round_, "i": i}
    await store.save_cdr({"uniqueid": f"u{round_}", "cause": 3})


@pytest.mark.parametrize("mode", ["fast", "immediate"])
@pytest_twisted.ensureDeferred
async def test_operations_succeed_at_once_after_a_real_restart(pg_cluster: PgCluster, mode: str) -> None:  # noqa: F811
    store = await open_store(pg_cluster.url, reactor, pool_size=POOL)
    try:
        await every_connection_works(store, 1)
        before = await threads.deferToThread(ucs_backends, pg_cluster.url)
        assert len(before) == POOL

        # Restarted with the store idle: its connections are dead and it cannot know yet.
        await pg_cluster.stop(mode)
        await pg_cluster.start()
        await every_connection_works(store, 2)  # not one failure
        after = await threads.deferToThread(ucs_backends, pg_cluster.url)
        assert len(after) == POOL and not set(after) & set(before)

        # Used while the server is down: a StoreError naming the store, every time.
        await pg_cluster.stop(mode)
        for i in range(2 * POOL):
            with pytest.raises(StoreError, match=r"cannot connect to store postgresql://postgres@127\.0\.0\.1"):
                await store.kv_get("t", f"k{i}")
        with pytest.raises(StoreError):
            await store.save_cdr({"uniqueid": "lost?", "cause": 3})
        await pg_cluster.start()
        await every_connection_works(store, 3)
        assert {c["uniqueid"] for c in await store.list_cdrs()} == {"u1", "u2", "u3"}
        assert await store.kv_items("t") == {f"k{i}": {"round": 3, "i": i} for i in range(2 * POOL)}
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_only_a_connection_the_server_ended_is_retried_and_only_once(store_url: str) -> None:
    store = await open_store(store_url, reactor, pool_size=1)
    try:
        calls: list[int] = []

        def bad_sql(conn: Any) -> None:
            calls.append(1)
            conn.execute("SELECT * FROM no_such_table")

        # The statement's own error, on a connection that is fine: not retried.
        with pytest.raises(Exception, match="no_such_table"):
            await store._run(bad_sql)
        assert len(calls) == 1
        assert await store.kv_get("t", "k", "fine") == "fine"

        def ends_its_connection(conn: Any) -> None:
            calls.append(2)
            conn.close()  # as if the server had ended it
            raise RuntimeError("the connection is gone")

        calls.clear()
        with pytest.raises(RuntimeError, match="the connection is gone"):
            await store._run(ends_its_connection)
        # PostgreSQL: retried once on a new connection, then the error stands.
        # SQLite's connection has no ``closed``: never retried.
        assert len(calls) == (2 if store_url.startswith("postgresql") else 1)
        if store_url.startswith("postgresql"):
            await store.kv_set("t", "k", "still works")
            assert await store.kv_get("t", "k") == "still works"
    finally:
        await store.close()


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_terminated_connection_is_replaced_without_an_error(store_url: str) -> None:
    """On the shared server: the store's backend killed, the next operation just works."""
    store = await open_store(store_url, reactor, pool_size=1)
    try:
        await store.kv_set("t", "k", 1)
        pid = await store._run(lambda conn: conn.info.backend_pid)

        def terminate() -> None:
            with psycopg.connect(store_url, autocommit=True, connect_timeout=10) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone() == (True,)

        await threads.deferToThread(terminate)
        assert await store.kv_get("t", "k") == 1
        assert await store._run(lambda conn: conn.info.backend_pid) != pid
    finally:
        await store.close()
