"""One entity edited on two UCS nodes at once (issue 20): both changes land.

Two :class:`Directory` objects on one store stand for two UCS nodes (as in
tests/test_directory_claims.py): each plans from its own memory, which the other's
change reaches only when it reads the store again (:meth:`Directory.refresh`, what
:mod:`ucs.cluster.dirsync` does a moment later).  A node whose memory is a moment
old is the deterministic case of two edits at once: without revisions its write
replaced the stored document whole and the other node's change was lost.  On both
stores (SQLite, PostgreSQL): two edits of one user's fields, a queue's members set on
one node while the user is edited on the other, an edit racing a deletion, documents
stored before revisions, and the store's conditional write itself.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from dirkit import at_once, two_nodes
from ucs.directory.directory import Directory
from ucs.error import NotFound, ProcessingError
from ucs.store import open_store
from ucs.store.base import KV_DELETE, KVExpect
from ucs.store.errors import Changed


async def stored_user(store: Any, user_id: int) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await store.kv_get("dir.users", str(user_id))
    return doc


@pytest_twisted.ensureDeferred
async def test_two_nodes_editing_different_fields_of_one_user_keep_both(store_url: str) -> None:
    store, a, b = await two_nodes(store_url, audit=True)
    try:
        user = await a.add("users", {"username": "hanna", "firstname": "Hanna", "email": "h@old.example"})
        await b.refresh("users")
        # Node A edits the first name; node B, not told yet, edits the e-mail.
        await a.edit("users", user.id, {"firstname": "Johanna"})
        edited = await b.edit("users", user.id, {"email": "h@new.example"})
        assert (edited.firstname, edited.email) == ("Johanna", "h@new.example")
        doc = await stored_user(store, user.id)
        assert doc is not None and (doc["firstname"], doc["email"]) == ("Johanna", "h@new.example")
        await a.refresh("users", [user.id])
        for node in (a, b):
            assert (node.users[user.id].firstname, node.users[user.id].email) == ("Johanna", "h@new.example")
        # B's audit entry is made over A's change: its "before" has A's first name.
        (entry,) = await store.audit_list(actor="ucs", action="edit", limit=1)
        assert entry["before"]["firstname"] == "Johanna" and entry["before"]["email"] == "h@old.example"
        assert entry["after"]["email"] == "h@new.example"

        # Truly at once, many times over: every field of every edit lands, whoever writes first.
        for n in range(5):
            results = await at_once(a.edit("users", user.id, {"lastname": f"L{n}"}),
                                    b.edit("users", user.id, {"number": f"+4930{n}"}))
            assert all(ok for ok, _ in results), results
            doc = await stored_user(store, user.id)
            assert doc is not None and (doc["lastname"], doc["number"]) == (f"L{n}", f"+4930{n}")
        await a.refresh("users")
        await b.refresh("users")
        assert a.users[user.id].lastname == b.users[user.id].lastname == "L4"
        assert a.users[user.id].number == b.users[user.id].number == "+49304"
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_queues_members_set_on_one_node_and_the_user_edited_on_the_other_both_land(
        store_url: str) -> None:
    store, a, b = await two_nodes(store_url, audit=True)
    try:
        sales = await a.add("queues", {"name": "Sales", "asterisk_name": "sales"})
        support = await a.add("queues", {"name": "Support", "asterisk_name": "support"})
        ida = await a.add("users", {"username": "ida"})
        await b.refresh("queues")
        await b.refresh("users")
        # Node B renames the user's display name; node A (not told yet) makes it a member of sales.
        await b.edit("users", ida.id, {"displayname": "Ida I."})
        assert await a.set_members(sales.id, [(ida.id, 2)]) == [(ida.id, 2)]
        doc = await stored_user(store, ida.id)
        assert doc is not None and doc["displayname"] == "Ida I." and doc["queues"] == {
            str(sales.id): {"priority": 2, "team_id": None, "supervisor": False}}
        # Members of two queues set on two nodes, each from a memory without the other's.
        await b.set_members(support.id, [(ida.id, 5)])
        await a.refresh("users")
        await b.refresh("users")
        for node in (a, b):
            assert node.users[ida.id].displayname == "Ida I."
            assert {q: m.priority for q, m in node.users[ida.id].queues.items()} == {sales.id: 2, support.id: 5}

        # At once: the members of sales on one node, a user edit on the other.
        results = await at_once(a.set_members(sales.id, [(ida.id, 7)]),
                                b.edit("users", ida.id, {"email": "ida@example.com"}))
        assert all(ok for ok, _ in results), results
        doc = await stored_user(store, ida.id)
        assert doc is not None and doc["email"] == "ida@example.com"
        assert {q: m["priority"] for q, m in doc["queues"].items()} == {str(sales.id): 7, str(support.id): 5}
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_an_edit_racing_a_deletion(store_url: str) -> None:
    store, a, b = await two_nodes(store_url, audit=True)
    try:
        keep = await a.add("users", {"username": "admin", "superuser": True})  # not the last superuser
        jan = await a.add("users", {"username": "jan"})
        await b.refresh("users")
        # Deleted on A; B, not told yet, edits it: refused, saying it was deleted; nothing stored.
        await a.delete("users", jan.id)
        with pytest.raises(NotFound, match=f"user {jan.id} was deleted .*on another UCS node"):
            await b.edit("users", jan.id, {"firstname": "Jan"})
        assert await stored_user(store, jan.id) is None
        assert jan.id not in b.users  # B has read it gone
        assert await store.kv_get("dir.users.claims", "username:jan") is None

        # Edited on B; A, not told yet, deletes it: deleted, its audit entry showing B's edit.
        kai = await a.add("users", {"username": "kai"})
        await b.refresh("users")
        await b.edit("users", kai.id, {"firstname": "Kai"})
        await a.delete("users", kai.id)
        assert await stored_user(store, kai.id) is None
        (entry,) = await store.audit_list(action="delete", entity_id=str(kai.id), limit=1)
        assert entry["before"]["firstname"] == "Kai"

        # At once: the user ends deleted; the edit either came first (and was deleted with it)
        # or is refused saying the user was deleted.
        lea = await a.add("users", {"username": "lea"})
        await b.refresh("users")
        (deleted_ok, _), (edited_ok, edited) = await at_once(a.delete("users", lea.id),
                                                             b.edit("users", lea.id, {"firstname": "Lea"}))
        assert deleted_ok
        assert edited_ok or (isinstance(edited, NotFound) and "was deleted" in str(edited)), edited
        assert await stored_user(store, lea.id) is None
        await b.refresh("users")
        assert lea.id not in a.users and lea.id not in b.users
        assert keep.id in a.users
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_documents_stored_before_revisions_load_and_are_edited(store_url: str) -> None:
    store = await open_store(store_url, reactor)
    try:
        # As a UCS from before revisions wrote them: no "rev".
        await store.kv_write([("dir.users", "1", {"id": 1, "username": "old", "firstname": "Olga"}),
                              ("dir.users", "2", {"id": 2, "username": "older"})])
        a, b = Directory(store), Directory(store)
        await a.load()
        await b.load()
        assert a.users[1].firstname == "Olga"
        await a.edit("users", 1, {"lastname": "Oldham"})
        edited = await b.edit("users", 1, {"email": "o@example.com"})  # B's memory has no revision either
        assert (edited.firstname, edited.lastname, edited.email) == ("Olga", "Oldham", "o@example.com")
        doc = await stored_user(store, 1)
        assert doc is not None and doc["rev"] == 2
        await b.delete("users", 2)
        assert await stored_user(store, 2) is None
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_the_store_writes_over_a_document_only_at_the_revision_expected(store_url: str) -> None:
    store = await open_store(store_url, reactor)
    try:
        await store.kv_write([("ns", "plain", {"v": 1}), ("ns", "odd", {"v": 1, "rev": "seven"}),
                              ("ns", "at3", {"v": 1, "rev": 3})])
        # No rev, or one that is not an integer, is revision 0.
        await store.kv_write([("ns", "plain", KVExpect({"v": 2, "rev": 1}, 0)),
                              ("ns", "odd", KVExpect({"v": 2, "rev": 1}, 0))])
        assert await store.kv_get("ns", "plain") == await store.kv_get("ns", "odd") == {"v": 2, "rev": 1}
        # A wrong revision: nothing of the write is kept (the other items, the audit entry).
        with pytest.raises(Changed, match="ns/at3 is no longer at revision 2"):
            await store.kv_write([("ns", "plain", {"v": 3}), ("ns", "at3", KVExpect({"v": 9}, 2))],
                                 audit=[{"actor": "t", "source": "t", "kind": "users", "action": "edit",
                                         "entity_id": "1", "before": None, "after": None}])
        assert await store.kv_get("ns", "plain") == {"v": 2, "rev": 1}
        assert await store.audit_list(actor="t") == []
        # A deletion too; and a key that is gone is not at any revision.
        with pytest.raises(Changed):
            await store.kv_write([("ns", "at3", KVExpect(KV_DELETE, 4))])
        await store.kv_write([("ns", "at3", KVExpect(KV_DELETE, 3))])
        assert await store.kv_get("ns", "at3") is None
        for value in ({"v": 1}, KV_DELETE):
            with pytest.raises(Changed):
                await store.kv_write([("ns", "at3", KVExpect(value, 0))])
        assert await store.kv_get("ns", "at3") is None
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_node_that_keeps_losing_the_race_is_told_to_try_again(store_url: str) -> None:
    store, a, b = await two_nodes(store_url, audit=True)
    try:
        user = await a.add("users", {"username": "max"})
        await b.refresh("users")
        real_refresh = b.refresh

        async def refresh_while_a_edits(kind: str, ids: Any = None) -> int:
            # Each time B reads the user again, A has changed it once more (as a busy node might).
            await a.edit("users", user.id, {"data": {"n": a.users[user.id].data.get("n", 0) + 1}})
            await real_refresh(kind, ids)
            await a.edit("users", user.id, {"data": {"n": a.users[user.id].data.get("n", 0) + 1}})
            return 0

        b.refresh = refresh_while_a_edits  # type: ignore[method-assign]
        await a.edit("users", user.id, {"firstname": "Max"})
        with pytest.raises(ProcessingError, match="other UCS nodes kept changing the same entities.*try again"):
            await b.edit("users", user.id, {"lastname": "Mustermann"})
        doc = await stored_user(store, user.id)
        assert doc is not None and doc["lastname"] == "" and doc["firstname"] == "Max"
    finally:
        await store.close()
