"""Names that are one entity's alone, claimed in the store (issue 20: several UCS nodes).

Two :class:`Directory` objects on one store stand for two UCS nodes: each checks
uniqueness against its own memory, which the other's change has not reached yet
(no directory sync here, as in the moment before a node hears of it).  On both
stores (SQLite, PostgreSQL): of two adds of the same user name at once, one is
refused with the usual "taken by" message; the same for a line's identifier and a
rename; two nodes starting on an empty store make one administrator; a claim left
by nobody is written over; a deletion or rename lets the name go.
"""

from __future__ import annotations


import pytest
import pytest_twisted

from dirkit import at_once, two_nodes
from ucs.error import InvalidDataInput

CLAIMS = "dir.users.claims"


@pytest_twisted.ensureDeferred
async def test_two_nodes_adding_the_same_user_name_at_once_make_one_user(store_url: str) -> None:
    store, a, b = await two_nodes(store_url)
    try:
        results = await at_once(a.add("users", {"username": "carla"}), b.add("users", {"username": "Carla"}))
        assert sorted(ok for ok, _ in results) == [False, True]
        winner = next(v for ok, v in results if ok)
        refused = next(v for ok, v in results if not ok)
        assert isinstance(refused, InvalidDataInput)
        assert f"is taken by user {winner.id}" in str(refused)  # by whom, as on one node
        stored = [d for d in (await store.kv_items("dir.users")).values() if d["username"].lower() == "carla"]
        assert len(stored) == 1
        assert await store.kv_get(CLAIMS, "username:carla") == winner.id
        # Both nodes know the one user now (the refused one read the users again).
        assert a.user_by_username("carla") is not None and b.user_by_username("carla") is not None

        # A rename on one node and an add on the other, to the same name, at once.
        dora = await a.add("users", {"username": "dora"})
        await b.refresh("users")
        results = await at_once(a.edit("users", winner.id, {"username": "erik"}),
                                b.edit("users", dora.id, {"username": "Erik"}))
        assert sorted(ok for ok, _ in results) == [False, True]
        assert "is taken by user" in str(next(v for ok, v in results if not ok))
        names = sorted(d["username"].lower() for d in (await store.kv_items("dir.users")).values())
        assert names.count("erik") == 1

        # Lines: the same pairing identifier (written differently) on two new lines at once.
        results = await at_once(a.add("lines", {"device": "SIP/1001", "identifiers": ["00:15:65:AA:BB:CC"]}),
                                b.add("lines", {"device": "SIP/1002", "identifiers": ["001565aabbcc"]}))
        assert sorted(ok for ok, _ in results) == [False, True]
        assert "is taken by line" in str(next(v for ok, v in results if not ok))
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_two_nodes_starting_on_an_empty_store_make_one_administrator(store_url: str) -> None:
    store, a, b = await two_nodes(store_url)
    try:
        results = await at_once(a.ensure_admin("first-password"), b.ensure_admin("other-password"))
        assert all(ok for ok, _ in results), results
        (admin_a, _), (admin_b, _) = (v for _, v in results)
        assert admin_a.id == admin_b.id
        admins = [d for d in (await store.kv_items("dir.users")).values() if d.get("superuser")]
        assert len(admins) == 1
    finally:
        await store.close()


@pytest_twisted.ensureDeferred
async def test_a_name_let_go_of_may_be_taken_and_a_claim_held_by_nobody_is_written_over(store_url: str) -> None:
    store, a, _ = await two_nodes(store_url)
    try:
        frank = await a.add("users", {"username": "frank"})
        await a.edit("users", frank.id, {"username": "franz"})
        assert await store.kv_get(CLAIMS, "username:frank") is None
        again = await a.add("users", {"username": "frank"})
        await a.delete("users", frank.id)
        assert await store.kv_get(CLAIMS, "username:franz") is None
        assert await store.kv_get(CLAIMS, "username:frank") == again.id
        # A store written by hand (or by a UCS from before claims): a claim nobody holds.
        await store.kv_write([(CLAIMS, "username:ghost", 999)])
        ghost = await a.add("users", {"username": "ghost"})
        assert await store.kv_get(CLAIMS, "username:ghost") == ghost.id
        with pytest.raises(InvalidDataInput, match="is taken by user"):
            await a.add("users", {"username": "GHOST"})
    finally:
        await store.close()
