"""A demoted AMI owner cannot overwrite the new owner's agent documents or intervals (issue 20).

Each ownership of the AMI link has a term, raised in the ``election`` table by the claim's
check (store migration 7); the owner's agent documents are written only while the row still
names its term.  On the real PostgreSQL: two electors, the old owner's save after the
take-over refused -- said once, nothing more written -- and the store keeps the new owner's
document; then an old owner cut off in the middle of a write (its session left open, as PostgreSQL
has not noticed) holds nothing of the new owner's for long; then two whole nodes, the old owner slow (its store's threads held) so that its
last save arrives after the new owner restored the agent and changed it -- and its supervision's
interval rows, refused the same way.  A single node
(SQLite) writes without a fence: ``tests/test_store.py`` and the agents' tests.
"""

from __future__ import annotations

import secrets
import threading
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet import reactor, task, threads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import globalLogPublisher

from clusterkit import cluster_env
from cutproxy import CutProxy
from pgkit import POSTGRES_URL, _postgres_schema, with_search_path
from serverkit import until
from test_cluster_election import TIMINGS, _terminate
from test_cluster_partition import via
from ucs.agents.persist import STATE, Saver
from ucs.cluster.election import OWNER, STANDBY, Elector
from ucs.cluster.lockconn import LockConnection, lock_key
from ucs.store import open_store
from ucs.store.base import Fence
from ucs.store.errors import Fenced

REFUSED = "it writes no more until it owns the link again"
ROWS_REFUSED = "interval rows not written"


class Logged:
    """The log events whose text has ``words`` (a context manager)."""

    def __init__(self, words: str) -> None:
        self.words = words
        self.events: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        if self.words in str(event.get("log_format", "")):
            self.events.append(event)
        if "log_failure" in event:
            self.failures.append(event)

    def __enter__(self) -> Logged:
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        globalLogPublisher.removeObserver(self)


async def _owner(elector: Elector, clock: task.Clock) -> None:
    """Let ``elector``'s clock run until it owns the lock (PostgreSQL is real)."""
    for _ in range(200):
        if elector.state == OWNER:
            return
        await until(lambda: elector.waiting or elector.state == OWNER, 10)
        if elector.state != OWNER:
            clock.advance(0.25)
    raise AssertionError(f"{elector.name} is {elector.state}")


@pytest_twisted.ensureDeferred
async def test_the_old_owners_save_after_the_take_over_is_refused_and_the_new_owners_document_kept() -> None:
    schema = f"fence_{secrets.token_hex(4)}"
    await threads.deferToThread(_postgres_schema, "create", schema)
    url = with_search_path(POSTGRES_URL, schema)
    store = await open_store(url, reactor)
    key = lock_key(f"test-{secrets.token_hex(4)}.example.com", "pbx:5038")
    clock_a, clock_b = task.Clock(), task.Clock()
    a = Elector(lambda: LockConnection(url, key, TIMINGS, "ucs-test a"), TIMINGS, clock_a, reactor, name="a")
    b = Elector(lambda: LockConnection(url, key, TIMINGS, "ucs-test b"), TIMINGS, clock_b, reactor, name="b")
    old, new = Saver(store), Saver(store)
    try:
        a.start()
        await _owner(a, clock_a)
        assert a.fence is not None and a.fence.term == 1  # the first ownership of this lock
        old.fence = a.fence
        old.put(STATE, "1", {"by": "a", "status": "READY"})
        await old.flush()
        assert await store.kv_get(STATE, "1") == {"by": "a", "status": "READY"}

        # a's session ends (pg_terminate_backend: the lock is free at once); a has not noticed
        # yet -- its clock stands still, as a paused or cut-off node's does -- and b takes over.
        b.start()
        await until(lambda: b.state == STANDBY and b.waiting, 10)
        assert a.backend_pid is not None
        await threads.deferToThread(_terminate, a.backend_pid)
        await _owner(b, clock_b)
        assert b.fence is not None and b.fence.term == 2
        new.fence = b.fence
        new.put(STATE, "1", {"by": "b", "status": "AUX"})
        await new.flush()

        with Logged(REFUSED) as logged:
            old.put(STATE, "1", {"by": "a, late", "status": "READY"})
            old.put(STATE, "2", {"by": "a, late"})
            await old.flush()
            assert old.fenced is not None and (old.fenced.term, old.fenced.now) == (1, 2)
            old.put(STATE, "3", {"by": "a, later still"})  # demoted: not even tried
            old.delete(STATE, "1")
            await old.flush()
        assert len(logged.events) == 1 and not logged.failures, (logged.events, logged.failures)
        assert await store.kv_items(STATE) == {"1": {"by": "b", "status": "AUX"}}

        new.put(STATE, "2", {"by": "b"})  # the owner's writes go on
        await new.flush()
        assert new.fenced is None and await store.kv_get(STATE, "2") == {"by": "b"}

        # Supervision's interval rows the same way: a's under its old term refused, nothing kept.
        await store.stats_write([("agent", "1", "2026-12-07", 600, {"readytime": 30.0})], fence=b.fence)
        try:
            await store.stats_write([("agent", "1", "2026-12-07", 600, {"readytime": 90.0}),
                                     ("queue", "support", "2026-12-07", 600, {"offered": 1})], fence=a.fence)
        except Fenced as e:
            assert (e.term, e.now) == (1, 2)
        else:
            raise AssertionError("a's rows were kept")
        assert await store.stats_read("agent", "2026-12-07", "2026-12-07") == [("1", "2026-12-07", 600,
                                                                               {"readytime": 30.0})]
        assert await store.stats_read("queue", "2026-12-07", "2026-12-07") == []

        # a notices, steps down and (its session gone) the next claim is another term.
        clock_a.advance(TIMINGS.check_interval)
        await until(lambda: a.state != OWNER and a.fence is None, 10)
    finally:
        await a.stop()
        await b.stop()
        await store.close()
        await threads.deferToThread(_postgres_schema, "drop", schema)


@pytest_twisted.ensureDeferred
async def test_a_slow_old_owners_last_save_arrives_after_the_new_owner_restored_and_is_refused(
        tmp_path: Path) -> None:
    """node-a owns the AMI link with agent 1 working; its store is slow (every thread of its
    pool held), so the save it makes when it steps down waits.  node-b takes over, restores the
    agent and puts it AUX (Break), saved.  Then node-a's save arrives: refused, said once,
    no failure logged, and the store keeps node-b's document -- without the fence node-a's
    READY would be there, and a restart of the cluster would restore it."""
    from test_cluster_handover import _agent_1_on_an_owner_and_a_standby
    from test_cluster_node import ami_up

    held = threading.Event()
    async with cluster_env(phones=2) as env:
        env.closing.append(held.set)
        a, node_a, b, node_b, agent = await _agent_1_on_an_owner_and_a_standby(tmp_path, env)
        assert node_a.elector.fence is not None
        term_a = node_a.elector.fence.term
        await a.get_agents().flush()
        stored = await b.get_store().kv_get(STATE, str(agent.id))
        assert stored["status"] == "READY"

        store_a = a.get_store()
        for _ in range(store_a._backend.threads):  # node-a's store: every thread busy
            deferToThreadPool(reactor, store_a._pool, held.wait, 60)
        with Logged(REFUSED) as logged:
            await threads.deferToThread(_terminate, node_a.elector.backend_pid)
            await node_a.elector.when("standby")
            await until(lambda: not a.get_agents().running, 10)  # stopped: its save is waiting
            await until(lambda: ami_up(b) and b.get_agents().local(agent.id) is not None, 20)
            assert node_b.elector.fence is not None and node_b.elector.fence.term > term_a
            await b.get_agents().change_status(agent.id, "AUX", "Break")
            await b.get_agents().flush()
            assert (await b.get_store().kv_get(STATE, str(agent.id)))["reason"] == "Break"
            # node-b's supervision (started from the store when it took over) saves its rows.
            supervision = b.get_supervision()
            assert supervision.fence == node_b.elector.fence
            await until(lambda: reactor.seconds() > b.get_agents().local(agent.id).since + 0.5, 5)
            await supervision.save()
            today = supervision.days.day(reactor.seconds())
            rows = await b.get_store().stats_read("agent", today, today)
            assert sum(r[3].get("auxtime", 0) for r in rows if r[0] == str(agent.id)) > 0, rows

            with Logged(ROWS_REFUSED) as refused:
                held.set()  # node-a's last saves arrive now: its agents', then its intervals'
                await a.get_agents().flush()
                await until(lambda: not a.get_agents().all(), 10)  # forgotten: node-b's now
        doc = await b.get_store().kv_get(STATE, str(agent.id))
        assert (doc["status"], doc["reason"]) == ("AUX", "Break")
        assert len(logged.events) == 1 and not logged.failures, (logged.events, logged.failures)
        # node-a's intervals (agent 1's READY time it counted up to its step-down) were refused too,
        # said once: the store has node-b's rows, as node-b wrote them.
        assert len(refused.events) == 1 and not refused.failures, (refused.events, refused.failures)
        assert await b.get_store().stats_read("agent", today, today) == rows
        assert a.get_agents()._saver.fenced is not None
        restored = b.get_agents().local(agent.id)
        assert restored is not None and (restored.status.name, restored.reason) == ("AUX", "Break")



def _writing(name: str) -> bool:
    """Whether the store session ``name`` is inside a transaction that has written something."""
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                           "AND backend_xid IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _end(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,))


def _claim(lock: LockConnection) -> Fence | None:
    lock.connect()
    assert lock.try_lock()
    return lock.take_term()


@pytest_twisted.ensureDeferred
async def test_an_owner_cut_off_in_the_middle_of_a_write_holds_nothing_of_the_new_owners() -> None:
    """node-a's store is cut off (its packets dropped, PostgreSQL not told: the store's sessions
    have the system's keepalives, hours) inside a fenced write that has written rows: those
    rows stay locked only until PostgreSQL ends the session for its silence inside the
    transaction (``FENCE_IDLE_MS``), so node-b, the new owner, writes the same document at
    once after -- not hours later.  When the network mends, node-a's store reconnects and
    writes again, under its old term: refused; nothing of node-a's write is in the store."""
    schema = f"fence_{secrets.token_hex(4)}"
    await threads.deferToThread(_postgres_schema, "create", schema)
    url = with_search_path(POSTGRES_URL, schema)
    store_b = await open_store(url, reactor)
    proxy = CutProxy(reactor, 5432)
    proxy.start()
    name = f"ucs-fence-{secrets.token_hex(4)}"
    store_a = await open_store(f"{via(url, proxy)}&application_name={name}", reactor, pool_size=1)
    key = lock_key(f"test-{secrets.token_hex(4)}.example.com", "pbx:5038")
    lock_a = LockConnection(url, key, TIMINGS, "ucs-test a")
    lock_b = LockConnection(url, key, TIMINGS, "ucs-test b")
    try:
        fence_a = await threads.deferToThread(_claim, lock_a)
        assert fence_a is not None and fence_a.term == 1
        writing = store_a.kv_write([(STATE, str(i), {"by": "a"}) for i in range(5000)], fence=fence_a)
        while not await threads.deferToThread(_writing, name):
            assert not writing.called, "node-a's write ended before it could be cut"
        proxy.freeze(server=False)  # node-a's network drops everything; PostgreSQL does not know
        await threads.deferToThread(lock_a.close)  # its election session is gone (the lock free)

        fence_b = await threads.deferToThread(_claim, lock_b)
        assert fence_b is not None and fence_b.term == 2
        # Key 0 is among the rows node-a's open transaction wrote: node-b's write waits for
        # PostgreSQL to end that session.
        mine = store_b.kv_write([(STATE, "0", {"by": "b"})], fence=fence_b)
        mine.addTimeout(15, reactor)
        await mine
        assert not await threads.deferToThread(_writing, name)  # node-a's session was ended

        proxy.restore()  # the network mends: node-a reconnects and writes again, under term 1
        try:
            await writing
        except Fenced as e:
            assert (e.term, e.now) == (1, 2)
        else:
            raise AssertionError("node-a's write was kept")
        assert await store_b.kv_items(STATE) == {"0": {"by": "b"}}
    finally:
        await threads.deferToThread(_end, name)  # should the test fail with it still open
        proxy.restore()
        await store_a.close()
        await proxy.stop()
        await threads.deferToThread(lock_a.close)
        await threads.deferToThread(lock_b.close)
        await store_b.close()
        await threads.deferToThread(_postgres_schema, "drop", schema)
