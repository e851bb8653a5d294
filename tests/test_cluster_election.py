"""The election of the AMI owner on the real PostgreSQL (issue 20, point 2).

Two electors in one process, each on its own session and its own clock: one
owner, one standby; the owner's session terminated (``pg_terminate_backend``)
→ the owner steps down when its check fails, the standby takes over at its
next try, and the old owner comes back as a standby without taking the lock.
The test across processes (``kill -9``) is in ``test_cluster_processes.py``.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from pgkit import POSTGRES_URL, _postgres_schema, with_search_path
from serverkit import until
from ucs.cluster.election import CLAIMING, DISCONNECTED, OWNER, STANDBY, TRANSITIONS, Elector
from ucs.cluster.lockconn import ELECTION_LOCK, LockConnection, Timings, lock_key
from ucs.config import ConfigError, Config
from ucs.store.migrations import MIGRATIONS

TIMINGS = Timings(retry_interval=1.0, check_interval=1.0, step_down_after=3.0, release_after=6)


class Node:
    """An elector on a shared clock, recording what it was told (in ``log``, with the time)."""

    def __init__(self, key: tuple[int, int], name: str, clock: task.Clock, log: list[tuple[float, str, str]]
                 ) -> None:
        self.clock = clock
        self.told: list[str] = []

        def told(what: str) -> None:
            self.told.append(what)
            log.append((clock.seconds(), name, what))

        self.elector = Elector(lambda: LockConnection(POSTGRES_URL, key, TIMINGS, f"ucs-test {name}"), TIMINGS,
                               clock, reactor, on_owner=lambda: told("owner"), on_standby=lambda: told("standby"),
                               name=name)

    def waiting(self) -> bool:
        """Its last piece of work answered and it waits on the clock (or it is stopped)."""
        return self.elector.waiting or self.elector.state == "stopped"


async def run_until(clock: task.Clock, nodes: list[Node], test: Any, seconds: float = 30) -> None:
    """Let the clock run half a second at a time, each time waiting for the work it started to be
    answered (PostgreSQL is real), until ``test()``; fails after ``seconds`` of the clock."""
    end = clock.seconds() + seconds
    while True:
        await until(lambda: all(n.waiting() for n in nodes), 10)
        if test():
            return
        if clock.seconds() >= end:
            raise AssertionError(f"not within {seconds} s: {[(n.elector.name, n.elector.state) for n in nodes]}")
        clock.advance(0.5)


def _terminate(pid: int) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _lock_holders(key: tuple[int, int]) -> list[int]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s "
                            "AND objsubid = 2 AND granted", (key[0] & 0xFFFFFFFF, key[1] & 0xFFFFFFFF)).fetchall()
    return [r[0] for r in rows]


@pytest_twisted.ensureDeferred
async def test_one_owner_the_standby_takes_over_after_the_old_owner_stepped_down_and_it_comes_back_as_standby(
        ) -> None:
    key = lock_key(f"test-{secrets.token_hex(4)}.example.com", "127.0.0.1:5038")
    clock, log = task.Clock(), []
    a, b = Node(key, "a", clock, log), Node(key, "b", clock, log)
    try:
        a.elector.start()
        await run_until(clock, [a], lambda: a.elector.state == OWNER)
        b.elector.start()
        await run_until(clock, [a, b], lambda: b.elector.state == STANDBY)
        clock_then = clock.seconds()
        await run_until(clock, [a, b], lambda: clock.seconds() >= clock_then + 5)  # b tries, and loses
        assert (a.elector.state, b.elector.state) == (OWNER, STANDBY)
        assert a.told == ["owner"] and b.told == []
        assert await threads.deferToThread(_lock_holders, key) == [a.elector.backend_pid]

        # The owner's session is terminated: PostgreSQL frees the lock at once.  The owner
        # notices at its next check and steps down; b wins the lock at its next try, but
        # claims it before connecting AMI: a has let go of the AMI link first.
        old_pid = a.elector.backend_pid
        assert old_pid is not None
        await threads.deferToThread(_terminate, old_pid)
        await run_until(clock, [a, b], lambda: b.elector.state == OWNER)
        assert [(who, what) for _, who, what in log] == [("a", "owner"), ("a", "standby"), ("b", "owner")]
        stepped_down, took_over = log[1][0], log[2][0]
        assert stepped_down < took_over
        assert await threads.deferToThread(_lock_holders, key) == [b.elector.backend_pid]

        # The old owner reconnects and stays a standby: the lock is b's.
        clock_then = clock.seconds()
        await run_until(clock, [a, b], lambda: clock.seconds() >= clock_then + 10)
        assert (a.elector.state, b.elector.state) == (STANDBY, OWNER)
        assert a.told == ["owner", "standby"] and b.told == ["owner"]
    finally:
        await a.elector.stop()
        await b.elector.stop()
    # Stopped, the owner's session is closed: the lock is free for the next one (once the
    # backend has exited, which PostgreSQL does just after the client closes).
    for _ in range(100):
        holders = await threads.deferToThread(_lock_holders, key)
        if not holders:
            break
        await task.deferLater(reactor, 0.05, lambda: None)
    assert holders == []


def _migrated_schema() -> str:
    """A schema of its own with the store's tables (the ``election`` table among them)."""
    schema = f"election_{secrets.token_hex(4)}"
    _postgres_schema("create", schema)
    url = with_search_path(POSTGRES_URL, schema)
    types = {"json": "JSON", "real": "DOUBLE PRECISION", "text": "TEXT"}
    with psycopg.connect(url, autocommit=True) as conn:
        for migration in MIGRATIONS:
            for statement in migration.statements_for("postgresql", types):
                conn.execute(statement)
    return url


def _age_of_proof(url: str) -> float:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT extract(epoch from clock_timestamp()) - max(proved) FROM election").fetchone()
    return float(row[0]) if row and row[0] is not None else -1.0


@pytest_twisted.ensureDeferred
async def test_after_an_owner_fell_silent_the_new_owner_does_not_wait_the_claim_again() -> None:
    """An owner cut off from the network stops checking its session; PostgreSQL frees its lock
    only ``release_after`` later, long after the cut owner stepped down. The node that wins
    the lock then reads when the old owner last proved its session alive and takes over at
    once -- not a whole claim later (issue 20: failover after a cut within 10 s). An owner whose
    session ended just after a proof is still waited for (the test above)."""
    timings = Timings(retry_interval=0.2, check_interval=0.2, step_down_after=0.5, release_after=1)
    url = await threads.deferToThread(_migrated_schema)
    schema = url.rpartition("search_path%3D")[2]
    key = lock_key(f"test-{secrets.token_hex(4)}.example.com", "pbx:5038")
    clock_a, clock_b = task.Clock(), task.Clock()
    told: list[str] = []
    a = Elector(lambda: LockConnection(url, key, timings, "ucs-test a"), timings, clock_a, reactor,
                on_owner=lambda: told.append("a owner"), on_standby=lambda: told.append("a standby"), name="a")
    b = Elector(lambda: LockConnection(url, key, timings, "ucs-test b"), timings, clock_b, reactor,
                on_owner=lambda: told.append("b owner"), name="b")
    try:
        a.start()
        while a.state != OWNER:
            await until(lambda: a.waiting, 10)
            clock_a.advance(0.2)
        await until(lambda: a.waiting, 10)  # its check as owner answered: a proof
        assert 0 <= await threads.deferToThread(_age_of_proof, url) < timings.claim
        b.start()
        await until(lambda: b.state == STANDBY and b.waiting, 10)
        # a falls silent (its clock stands still: it checks no more) ...
        await until(lambda: _age_of_proof(url) > timings.claim + 0.6, 10)
        # ... and PostgreSQL, its keepalives spent, ends a's session: the lock is free.
        assert a.backend_pid is not None
        await threads.deferToThread(_terminate, a.backend_pid)
        while b.state != CLAIMING:
            clock_b.advance(0.2)
            await until(lambda: b.waiting, 10)
        won_at = clock_b.seconds()
        while b.state != OWNER:
            clock_b.advance(0.05)
            await until(lambda: b.waiting or b.state == OWNER, 10)
        assert clock_b.seconds() - won_at < 0.2 < timings.claim, "b waited a claim for an owner long silent"
        assert told == ["a owner", "b owner"]
    finally:
        await a.stop()
        await b.stop()
        await threads.deferToThread(_postgres_schema, "drop", schema)


@pytest_twisted.ensureDeferred
async def test_a_stopped_owner_steps_down_and_frees_the_lock() -> None:
    key = lock_key(f"test-{secrets.token_hex(4)}.example.com", "pbx:5038")
    clock, log = task.Clock(), []
    a, b = Node(key, "a", clock, log), Node(key, "b", clock, log)
    try:
        a.elector.start()
        await run_until(clock, [a], lambda: a.elector.state == OWNER)
        b.elector.start()
        await run_until(clock, [a, b], lambda: b.elector.state == STANDBY)
        await a.elector.stop()
        assert a.told == ["owner", "standby"]
        await run_until(clock, [a, b], lambda: b.elector.state == OWNER)
        assert b.told == ["owner"]
    finally:
        await a.elector.stop()
        await b.elector.stop()


@pytest_twisted.ensureDeferred
async def test_postgresql_unreachable_is_a_standby_that_retries() -> None:
    clock, log = task.Clock(), []
    node = Node(lock_key("x.example.com", "pbx"), "a", clock, log)
    node.elector = Elector(lambda: LockConnection("postgresql://postgres@127.0.0.1:1/test", (1, 2), TIMINGS, "t"),
                           TIMINGS, clock, reactor, on_owner=lambda: node.told.append("owner"), name="a")
    node.elector.start()
    try:
        await run_until(clock, [node], lambda: node.elector.state == DISCONNECTED)
        assert node.elector.link == "down" and node.told == []
        await run_until(clock, [node], lambda: clock.seconds() >= 3)  # it tried again, and again
        assert node.elector.state == DISCONNECTED and node.told == []
        assert [state for _, state in node.elector.history].count("connecting") >= 3
    finally:
        await node.elector.stop()


def test_the_lock_key_is_the_same_on_every_node_and_differs_by_domain_and_asterisk() -> None:
    assert lock_key("cc.example.com", "pbx:5038") == lock_key("cc.example.com", "pbx:5038")
    assert lock_key("cc.example.com", "pbx:5038")[0] == ELECTION_LOCK
    assert len({lock_key("cc.example.com", "pbx:5038"), lock_key("cc2.example.com", "pbx:5038"),
                lock_key("cc.example.com", "pbx2:5038")}) == 3


def test_the_owner_steps_down_only_from_owner_and_before_closing() -> None:
    assert TRANSITIONS[(OWNER, "failed")] == (DISCONNECTED, ("step_down", "close", "wait"))
    # Winning the lock is not owning the AMI link yet: a claim first, ended by a check.
    assert TRANSITIONS[(STANDBY, "won")] == (CLAIMING, ("wait",))
    assert TRANSITIONS[(CLAIMING, "alive")] == (OWNER, ("take_over", "wait"))
    assert (DISCONNECTED, "won") not in TRANSITIONS
    assert not any("step_down" in outputs for (state, _), (_, outputs) in TRANSITIONS.items() if state != OWNER)


def test_keepalives_free_the_lock_after_the_owner_steps_down() -> None:
    t = Timings(retry_interval=1, check_interval=1, step_down_after=3, release_after=6)
    server = t.server_settings()
    assert server["tcp_keepalives_idle"] + server["tcp_keepalives_interval"] * server["tcp_keepalives_count"] == 6
    assert t.client_params()["tcp_user_timeout"] == 3000
    assert t.claim == 4


@pytest.mark.parametrize(("cluster", "store", "message"), [
    ({"enabled": True, "domain": "cc.example.com"}, {}, "cluster.enabled: a cluster needs the PostgreSQL store"),
    ({"enabled": True}, {"url": "postgresql://u@h/db"}, "cluster.domain: '' is empty"),
    ({"enabled": True, "domain": "cc.example.com", "release_after": 4}, {"url": "postgresql://u@h/db"},
     "cluster.release_after: 4 is not more than"),
    ({"domain": "not a domain"}, {}, "cluster.domain: 'not a domain' is not accepted"),
    ({"nats": ["http://x"]}, {}, "cluster.nats: 'http://x' is not a NATS URL"),
    ({"node": "a b"}, {}, "cluster.node: 'a b' is not accepted"),
    ({"enabled": True, "domain": "cc.example.com"}, {"url": "postgresql://u@h/db", "demo": True},
     "cluster.enabled: the demo runs a simulated PBX inside each node"),
])
def test_bad_cluster_settings_say_what_is_wrong(cluster: dict[str, object], store: dict[str, object],
                                                message: str) -> None:
    demo = {"enabled": True} if store.pop("demo", False) else {}
    with pytest.raises(ConfigError) as e:
        Config().replace(cluster=cluster, **({"store": store} if store else {}), **({"demo": demo} if demo else {}))
    assert message in str(e.value)


def test_without_cluster_the_config_is_a_single_process() -> None:
    assert Config().cluster.enabled is False
    c = Config().replace(cluster={"enabled": True, "domain": "CC.example.com"},
                         store={"url": "postgresql://u@h/db"})
    assert c.cluster.domain == "cc.example.com"
