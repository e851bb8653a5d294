"""The audit log and the writers' locks (migration 4) on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from ucs.store import base as store_base
from ucs.store import open_store


def entry(n: int, **changes: Any) -> dict[str, Any]:
    return {"actor": "admin", "source": "api", "kind": "queues", "action": "edit", "entity_id": str(n),
            "before": {"id": n, "name": "Old"}, "after": {"id": n, "name": f"New {n} ž"}, **changes}


@pytest_twisted.ensureDeferred
async def test_audit_entries_filtered_newest_first_in_pages(store_url: str) -> None:
    clock = task.Clock()
    clock.advance(1000)
    s = await open_store(store_url, reactor, clock=clock)
    try:
        await s.audit_write([entry(1), entry(2, actor="bob", source="ucs-admin")])
        clock.advance(10)
        await s.audit_write([entry(3, kind="users", action="add", before=None)])
        clock.advance(10)
        await s.audit_write([entry(4, action="delete", after=None)])
        everything = await s.audit_list()
        assert [e["entity_id"] for e in everything] == ["4", "3", "2", "1"]
        first = everything[-1]
        assert first["at"] == 1000 and first["before"] == {"id": 1, "name": "Old"}
        assert first["after"] == {"id": 1, "name": "New 1 ž"} and first["actor"] == "admin"
        assert everything[0]["after"] is None and everything[1]["before"] is None
        assert [e["entity_id"] for e in await s.audit_list(actor="bob")] == ["2"]
        assert [e["entity_id"] for e in await s.audit_list(kind="users", action="add")] == ["3"]
        assert [e["entity_id"] for e in await s.audit_list(since=1010, until=1020)] == ["3"]
        page1 = await s.audit_list(limit=3)
        page2 = await s.audit_list(limit=3, before_id=page1[-1]["id"])
        assert [e["entity_id"] for e in page1 + page2] == ["4", "3", "2", "1"]
        with pytest.raises(ValueError, match="not an audit filter"):
            await s.audit_list(password="x")
        with pytest.raises(ValueError, match="limit"):
            await s.audit_list(limit=0)
        with pytest.raises(ValueError, match="actor"):
            await s.audit_write([entry(5, actor="")])
    finally:
        await s.close()


@pytest_twisted.ensureDeferred
async def test_a_lock_is_held_refreshed_released_and_freed_when_stale(store_url: str) -> None:
    clock = task.Clock()
    s = await open_store(store_url, reactor, clock=clock)
    try:
        ucs_node = {"holder": "ucs:host:1", "url": "ws://127.0.0.1:8080/ws"}
        assert await s.lock_claim("admin", {"holder": "admin:host:7"}, 90) is None
        other = await s.lock_claim("admin", {"holder": "admin:host:8"}, 90)
        assert other is not None and other["holder"] == "admin:host:7" and other["age"] == 0
        clock.advance(60)
        assert await s.lock_claim("admin", {"holder": "admin:host:7"}, 90) is None  # refreshed
        clock.advance(60)
        assert await s.lock_claim("admin", {"holder": "admin:host:8"}, 90) is not None
        assert await s.lock_claim("ucs:host:1", ucs_node, 90) is None
        held = await s.locks(90)
        assert set(held) == {"admin", "ucs:host:1"} and held["ucs:host:1"]["url"] == ucs_node["url"]
        clock.advance(100)  # admin:host:7 crashed: its lock is free
        assert await s.lock_claim("admin", {"holder": "admin:host:8"}, 90) is None
        assert await s.locks(90) == {"admin": {"holder": "admin:host:8", "age": 0.0}}
        assert not await s.lock_release("admin", "admin:host:7")
        assert await s.lock_release("admin", "admin:host:8")
        assert await s.locks(1000) == {"ucs:host:1": {**ucs_node, "age": 100.0}}
    finally:
        await s.close()


@pytest_twisted.ensureDeferred
async def test_a_store_of_schema_3_is_upgraded_with_its_data(store_url: str, monkeypatch: Any) -> None:
    full = store_base.MIGRATIONS
    monkeypatch.setattr(store_base, "MIGRATIONS", full[:3])
    old = await open_store(store_url, reactor)
    assert old.schema_version == 3
    await old.kv_set("dir.queues", "1", {"id": 1, "name": "Support"})
    await old.close()
    monkeypatch.setattr(store_base, "MIGRATIONS", full)
    new = await open_store(store_url, reactor)
    try:
        assert new.schema_version >= 4  # and any migration after the audit table
        assert await new.kv_get("dir.queues", "1") == {"id": 1, "name": "Support"}
        await new.audit_write([entry(1)])
        assert len(await new.audit_list()) == 1
    finally:
        await new.close()


@pytest_twisted.ensureDeferred
async def test_config_changes_are_audited_and_read_by_superusers_only(store_url: str) -> None:
    from ucs.api.registry import Registry
    from ucs.api.session import SessionManager
    from ucs.directory import api as directory_api
    from ucs.directory import audit_api
    from ucs.directory.directory import Directory
    from ucs.error import InvalidDataInput, PermissionDenied

    s = await open_store(store_url, reactor)
    try:
        d = Directory(s, audit=s)
        await d.load()
        admin, _ = await d.ensure_admin("admin-password")
        reg = Registry()
        directory_api.register(reg, d)
        audit_api.register(reg, s)
        sessions = SessionManager(reactor)
        root = sessions.create(user=admin)
        q = await reg.call(root, "config.queues.add", [{"name": "Support", "asterisk_name": "support"}])
        carol = await reg.call(root, "config.users.add", [{"username": "carol", "password": "12345678",
                                                           "queues": {str(q["id"]): {}}}])
        await reg.call(root, "config.users.edit", [{"id": carol["id"], "password": "87654321"}])
        await reg.call(root, "config.queues.delete", [q["id"]])  # takes carol out of it: audited too
        page = await reg.call(root, "audit.list", {"limit": 2})
        assert [(e["kind"], e["action"], e["actor"], e["source"]) for e in page["entries"]] == [
            ("users", "edit", "admin", "api"), ("queues", "delete", "admin", "api")]
        assert page["entries"][0]["before"]["queues"] and not page["entries"][0]["after"]["queues"]
        rest = await reg.call(root, "audit.list", {"limit": 2, "before_id": page["next"]})
        assert [(e["kind"], e["action"]) for e in rest["entries"]] == [("users", "edit"), ("users", "add")]
        assert rest["entries"][0]["before"]["password"] == rest["entries"][0]["after"]["password"] == "set"
        first = await reg.call(root, "audit.list", {"filters": {"source": "ucs"}})
        assert [(e["actor"], e["entity_id"]) for e in first["entries"]] == [("ucs", str(admin.id))]
        assert first["next"] is None
        with pytest.raises(InvalidDataInput, match="not a filter"):
            await reg.call(root, "audit.list", {"filters": {"password": "x"}})
        agent = sessions.create(user=d.users[carol["id"]])
        with pytest.raises(PermissionDenied, match="superuser"):
            await reg.call(agent, "audit.list")
    finally:
        await s.close()


# -- a change and its audit entry: one transaction ---------------------------------------------

_REFUSE = {
    "sqlite": {
        "audit": ["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
        "queues": [f"CREATE TRIGGER refuse_queues{op} BEFORE {op} ON kv WHEN NEW.namespace = 'dir.queues' "
                   "BEGIN SELECT RAISE(ABORT, 'queues refused'); END" for op in ("INSERT", "UPDATE")],
        "drop": ["DROP TRIGGER IF EXISTS refuse_audit", "DROP TRIGGER IF EXISTS refuse_queuesINSERT",
                 "DROP TRIGGER IF EXISTS refuse_queuesUPDATE"],
    },
    "postgresql": {
        "audit": ["CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '% refused', TG_ARGV[0]; "
                  "END $$ LANGUAGE plpgsql",
                  "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION refuse('audit')"],
        "queues": ["CREATE TRIGGER refuse_queues BEFORE INSERT OR UPDATE ON kv FOR EACH ROW "
                   "WHEN (NEW.namespace = 'dir.queues') EXECUTE FUNCTION refuse('queues')"],
        "drop": ["DROP TRIGGER IF EXISTS refuse_audit ON audit", "DROP TRIGGER IF EXISTS refuse_queues ON kv"],
    },
}


def _execute(url: str, statements: list[str]) -> Any:
    """Run SQL on a connection of the test's own (as an operator in psql/sqlite3 would), in a thread."""
    from twisted.internet import threads

    def run() -> None:
        if url.startswith("sqlite"):
            import sqlite3

            conn = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
        else:
            import psycopg

            conn = psycopg.connect(url, autocommit=True)
        try:
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    return threads.deferToThread(run)


@pytest_twisted.ensureDeferred
async def test_a_change_is_never_kept_without_its_audit_entry_nor_the_reverse(store_url: str) -> None:
    """The database itself refuses the audit row (a trigger, as a full disk or a revoked grant
    would): the change is not kept, in the store or in memory, and nobody is told of it; then it
    refuses the change: no audit entry is left for it."""
    from ucs.bus import EventBus
    from ucs.directory.directory import Directory
    from ucs.error import ProcessingError

    dialect = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    sql = _REFUSE[dialect]
    s = await open_store(store_url, reactor)
    try:
        bus = EventBus()
        heard: list[tuple[str, str]] = []
        bus.subscribe("config.change", lambda e, args: heard.append((args["kind"], args["action"])))
        d = Directory(s, bus, audit=s)
        await d.load()
        await d.ensure_admin("admin-password")
        support = await d.add("queues", {"name": "Support", "asterisk_name": "support"}, actor="admin", source="api")
        carol = await d.add("users", {"username": "carol", "queues": {str(support.id): {}}}, actor="admin", source="api")
        audited = len(await s.audit_list())
        heard.clear()

        async def stored(kind: str) -> dict[str, Any]:
            items: dict[str, Any] = await s.kv_items(f"dir.{kind}")
            return items

        await _execute(store_url, sql["audit"])
        with pytest.raises(ProcessingError, match="add queue 2 could not be stored .*audit refused.*nothing was changed"):
            await d.add("queues", {"name": "Sales", "asterisk_name": "sales"}, actor="admin", source="api")
        with pytest.raises(Exception, match="audit refused"):
            await d.edit("users", carol.id, {"displayname": "Carol C."}, actor="admin", source="api")
        with pytest.raises(Exception, match="audit refused"):
            await d.delete("queues", support.id, actor="admin", source="api")  # would edit carol too
        assert set(await stored("queues")) == {str(support.id)} and [q.name for q in d.queues.values()] == ["Support"]
        assert (await stored("users"))[str(carol.id)]["displayname"] == "" and carol.displayname == ""
        assert list(carol.queues) == [support.id] and list((await stored("users"))[str(carol.id)]["queues"]) == [
            str(support.id)]
        assert len(await s.audit_list()) == audited and heard == []
        again = Directory(s)
        await again.load()
        assert [q.name for q in again.queues.values()] == ["Support"]

        await _execute(store_url, sql["drop"] + sql["queues"])
        with pytest.raises(Exception, match="queues refused"):
            await d.add("queues", {"name": "Sales", "asterisk_name": "sales"}, actor="admin", source="api")
        with pytest.raises(Exception, match="queues refused"):
            await d.edit("queues", support.id, {"name": "Help"}, actor="admin", source="api")
        assert len(await s.audit_list()) == audited and heard == [] and d.queues[support.id].name == "Support"

        await _execute(store_url, sql["drop"])
        sales = await d.add("queues", {"name": "Sales", "asterisk_name": "sales"}, actor="admin", source="api")
        await d.delete("queues", support.id, actor="admin", source="api")
        entries = await s.audit_list(limit=3)
        assert [(e["kind"], e["action"], e["entity_id"]) for e in entries] == [
            ("users", "edit", str(carol.id)), ("queues", "delete", str(support.id)), ("queues", "add", str(sales.id))]
        assert len({e["at"] for e in entries[:2]}) == 1  # the deletion and the edit it made: one transaction
        assert sales.id == support.id + 1 and not carol.queues
        assert heard == [("queues", "add"), ("users", "edit"), ("queues", "delete")]
    finally:
        await s.close()
