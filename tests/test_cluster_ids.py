"""Issue 20: two nodes adding an entity of one kind at the same moment get distinct ids.

Two whole ``UCSServer``s with ``[cluster]`` on one PostgreSQL schema and the
real NATS.  Each node allocates a new entity's id from its own memory, so two
adds started in the same turn pick the same id; the store inserts the row only
if the id is free, so the second write is refused, that node reads the first
one's user in and gives its own the next id.  Both users exist on both nodes
(the directory's sync), with their own names, and the store has both.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest_twisted
from twisted.internet import threads
from twisted.internet.defer import Deferred, gatherResults

from clusterkit import cluster_env
from pgkit import POSTGRES_URL
from serverkit import until
from test_cluster_node import ami_up
from ucs.server import UCSServer


def stored_users(schema: str) -> dict[int, str]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        rows = conn.execute(f"SELECT key, value->>'username' FROM \"{schema}\".kv WHERE namespace = 'dir.users'")
        return {int(k): name for k, name in rows.fetchall()}


@pytest_twisted.ensureDeferred
async def test_two_nodes_adding_users_at_once_get_distinct_ids(tmp_path: Path) -> None:
    async with cluster_env(phones=1) as env:
        schema = env.schema
        a = await env.start(tmp_path, "node-a")
        await a.get_cluster().elector.when("owner")
        await until(lambda: ami_up(a), 10)
        b = await env.start(tmp_path, "node-b")
        await b.get_cluster().elector.when("standby")
        await until(lambda: b.get_cluster().dirsync is not None and a.get_cluster().dirsync is not None, 10)
        da, db = a.get_directory(), b.get_directory()
        for round_ in range(3):
            # Both nodes would give the next user the same id: the race is real.
            assert da.next_ids()["users"] == db.next_ids()["users"]
            wanted = da.next_ids()["users"]
            names = (f"anna{round_}", f"bert{round_}")
            added = await gatherResults([
                Deferred.fromCoroutine(da.add("users", {"username": names[0], "password": "pw-anna-123"})),
                Deferred.fromCoroutine(db.add("users", {"username": names[1], "password": "pw-bert-123"}))])
            ids = {u.username: u.id for u in added}
            assert sorted(ids.values()) == [wanted, wanted + 1]
            for d in (da, db):
                await until(lambda d=d: all(d.users.get(i) is not None and d.users[i].username == n
                                            for n, i in ids.items()), 10)
            stored = await threads.deferToThread(stored_users, schema)
            assert all(stored[i] == n for n, i in ids.items())
        assert len(da.users) == len(db.users) == 7  # the administrator and six
