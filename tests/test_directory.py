"""The directory on both stores: validation that names each bad field, persistence, references."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ucs.api.registry import Registry
from ucs.api.session import SessionManager
from ucs.bus import EventBus
from ucs.directory import api as directory_api
from ucs.directory.directory import Directory
from ucs.error import InvalidDataInput, NotFound, PermissionDenied
from ucs.events import EVENT_USER_CHANGE
from ucs.store import open_store


async def fresh(store_url: str) -> tuple[Any, Directory]:
    store = await open_store(store_url, reactor)
    d = Directory(store, EventBus())
    await d.load()
    return store, d


@pytest_twisted.ensureDeferred
async def test_entities_round_trip_and_survive_a_restart(store_url: str) -> None:
    store, d = await fresh(store_url)
    try:
        admin, generated = await d.ensure_admin()
        assert admin.superuser and generated and len(generated) >= 12
        again, none = await d.ensure_admin()
        assert again is admin and none is None  # created once
        group = await d.add("groups", {"name": "Brno"})
        team = await d.add("teams", {"name": "Blue"})
        q = await d.add("queues", {"name": "Support", "asterisk_name": "support", "type": 1})
        line = await d.add("lines", {"device": "SIP/1001", "identifiers": ["00:15:65:AA:BB:CC", "desk-1"],
                                     "auto_answer": "sip-notify"})
        alice = await d.add("users", {
            "username": "alice", "password": "correct horse", "firstname": "Alice", "lastname": "Agent",
            "email": "alice@example.com", "locale": "cs", "group_id": group.id, "lines": [line.id],
            "queues": {str(q.id): {"priorities": 2, "team_id": team.id}}, "data": {"crm": 7},
            "external_id": "ext-1", "number": "+420777123456",
        })
        lunch = await d.add("auxreasons", {"name": "Lunch"})
        sales = await d.add("callreasons", {"code": "SALES", "name": "Sales"})
        sub = await d.add("callreasons", {"code": "UPSELL", "parent_id": sales.id})
        assert alice.password_hash.startswith("$argon2id$") and "correct horse" not in alice.password_hash
        assert await d.verify_password(alice, "correct horse")
        assert not await d.verify_password(alice, "wrong horse")
        assert d.line_by_identifier("001565aabbcc") is line  # MAC without punctuation
        assert d.line_by_identifier("DESK-1") is line
        assert d.queues_of(alice)[0][1].priority == 2

        d2 = Directory(store)
        await d2.load()
        a2 = d2.user_by_username("ALICE")
        assert a2 is not None and a2.to_dict() == alice.to_dict()
        assert d2.auxreasons[lunch.id].name == "Lunch" and d2.callreasons[sub.id].parent_id == sales.id
        assert await d2.verify_password(a2, "correct horse")
        bob = await d2.add("users", {"username": "bob"})
        assert bob.id == alice.id + 1  # ids continue after a restart
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_every_bad_field_is_named(store_url: str) -> None:
    store, d = await fresh(store_url)
    try:
        await d.add("users", {"username": "alice"})
        with pytest.raises(InvalidDataInput) as e:
            await d.add("users", {"username": "Alice", "password": "short", "email": "nope",
                                  "group_id": 99, "lines": [5], "queues": {"7": {}}, "colour": "red"})
        fields = e.value.message
        assert set(fields) == {"username", "password", "email", "group_id", "lines", "queues", "colour"}
        assert "taken by user 1" in fields["username"]
        assert "at least 8" in fields["password"]
        assert "group 99 does not exist" in fields["group_id"]
        assert "accepted:" in fields["colour"]
        with pytest.raises(InvalidDataInput) as e:
            await d.add("lines", {"device": "1001"})
        assert "SIP/1001" in e.value.message["device"]
        with pytest.raises(InvalidDataInput) as e:
            await d.add("queues", {"name": "x"})
        assert e.value.message == {"asterisk_name": "is required"}
        await d.add("lines", {"device": "SIP/1001", "identifiers": ["aa:bb:cc:dd:ee:ff"]})
        with pytest.raises(InvalidDataInput) as e:
            await d.add("lines", {"device": "SIP/1002", "identifiers": ["AABBCCDDEEFF"]})
        assert "taken by line 1" in e.value.message["identifiers"]
        with pytest.raises(InvalidDataInput, match="line breaks"):
            await d.add("auxreasons", {"name": "Lunch\r\nAction: Originate"})
        top = await d.add("callreasons", {"code": "A"})
        sub = await d.add("callreasons", {"code": "B", "parent_id": top.id})
        with pytest.raises(InvalidDataInput, match="only two levels"):
            await d.add("callreasons", {"code": "C", "parent_id": sub.id})
        with pytest.raises(NotFound):
            await d.edit("users", 42, {"firstname": "x"})
        assert len(d.users) == 1  # nothing half-written
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_deleting_keeps_references_consistent(store_url: str) -> None:
    store, d = await fresh(store_url)
    try:
        admin, _ = await d.ensure_admin("admin-password")
        with pytest.raises(InvalidDataInput, match="last superuser"):
            await d.delete("users", admin.id)
        q = await d.add("queues", {"name": "Support", "asterisk_name": "support"})
        line = await d.add("lines", {"device": "SIP/1001"})
        u = await d.add("users", {"username": "alice", "lines": [line.id], "queues": {str(q.id): {}}})
        await d.delete("queues", q.id)
        await d.delete("lines", line.id)
        assert u.queues == {} and u.lines == []
        d2 = Directory(store)
        await d2.load()
        assert d2.users[u.id].queues == {} and d2.users[u.id].lines == []
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_config_methods_through_the_registry(tmp_path: Any) -> None:
    store, d = await fresh(f"sqlite:///{tmp_path / 'ucs.db'}")
    try:
        bus = EventBus()
        d._bus = bus
        changes: list[tuple[str, str]] = []
        bus.subscribe(EVENT_USER_CHANGE, lambda user, args: changes.append((user.username, args["action"])))
        reg = Registry()
        directory_api.register(reg, d)
        sessions = SessionManager(reactor)
        admin, _ = await d.ensure_admin("admin-password")
        root = sessions.create(user=admin)
        created = await reg.call(root, "config.users.add", {"data": {"username": "carol", "password": "12345678"}})
        assert "password" not in created and "password_hash" not in created
        edited = await reg.call(root, "config.users.edit", [{"id": created["id"], "firstname": "Carol"}])
        assert edited["displayname"] == "Carol"
        assert changes == [("admin", "add"), ("carol", "add"), ("carol", "edit")]
        carol = d.users[created["id"]]
        agent = sessions.create(user=carol)
        with pytest.raises(PermissionDenied, match="superuser"):
            await reg.call(agent, "config.users.delete", [created["id"]])
        with pytest.raises(PermissionDenied):
            await reg.call(agent, "config.users.list")
        assert await reg.call(agent, "config.auxreasons.list") == []
        with pytest.raises(InvalidDataInput) as e:
            await reg.call(root, "config.users.edit", [{"firstname": "x"}])
        assert "id" in e.value.message
        # seed 000's middleware example: keep the admin's user name
        def keep_admin(handler: Any, session: Any, data: dict[str, Any]) -> Any:
            if data["id"] == 1 and data.get("username", "admin") != "admin":
                raise InvalidDataInput({"username": "Admin username can't be changed"})
            return handler(session, data)

        reg.add_middleware("config.users.edit", keep_admin)
        with pytest.raises(InvalidDataInput, match="can't be changed"):
            await reg.call(root, "config.users.edit", [{"id": 1, "username": "root"}])
        assert d.users[1].username == "admin"
        await reg.call(root, "config.users.delete", [created["id"]])
        assert created["id"] not in d.users
    finally:
        await store.close()
