"""Issue 20: which API methods the AMI owner carries out, how its errors come back, and a
node's directory read again from the shared store (no NATS needed: the pieces alone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ucs.bus import EventBus
from ucs.cluster.forward import OWNER_WORK, Forwarder, OwnerUnavailable, OwnerWork, rebuild_error
from ucs.config import Config
from ucs.directory.directory import Directory
from ucs.error import InvalidDataInput, PBXError, ProcessingError, UCSError
from ucs.events import EVENT_CONFIG_CHANGE
from ucs.server import UCSServer
from ucs.store import open_store

#: Registry methods named like the owner's work that are served where the session is.
LOCAL = {"agents.directory"}  # the transfer directory: the directory and the node's own view


def test_the_owners_work_is_every_agent_and_call_method_of_the_registry(tmp_path: Path) -> None:
    server = UCSServer(Config().replace(store={"url": f"sqlite:///{tmp_path / 'ucs.db'}"}, web={"port": 0}), reactor)
    names = set(server.get_registry().names())
    assert OWNER_WORK <= names  # a renamed method would silently run on the standby
    acting = {n for n in names if n.split(".")[0] in ("agent", "agents", "call", "cdr")} - LOCAL
    assert acting <= OWNER_WORK, f"not carried out by the owner: {sorted(acting - OWNER_WORK)}"
    # Logging in, the directory, lookups and plugins stay where the session is.
    assert not {"login", "provision", "config.users.edit", "lookup.number", "plugins.list"} & OWNER_WORK


@pytest.mark.parametrize("error", [
    InvalidDataInput({"reason": "'Nope' is not an AUX reason; give one of Break, Lunch"}),
    PBXError("Asterisk refused QueuePause: Interface not found"),
    ProcessingError("blocked by the status hook"),
])
def test_the_owners_error_comes_back_as_the_same_class_code_and_message(error: UCSError) -> None:
    again = rebuild_error(error.to_dict())
    assert isinstance(again, ProcessingError if isinstance(error, PBXError) else type(error))
    assert again.to_dict() == error.to_dict()


@pytest_twisted.ensureDeferred
async def test_no_link_to_the_cluster_is_a_retryable_error() -> None:
    forwarder = Forwarder(lambda: None, lambda: False)
    assert forwarder.wants("call.dial") and not forwarder.wants("login")
    with pytest.raises(OwnerUnavailable) as e:
        await forwarder.call(object(), "call.dial", ["123"])
    assert e.value.code == 503 and "try again" in str(e.value)
    assert not Forwarder(lambda: None, lambda: True).wants("call.dial")  # the owner does its own work


@pytest_twisted.ensureDeferred
async def test_the_owner_refuses_what_is_not_its_work_and_asks_to_retry_while_taking_over(tmp_path: Path) -> None:
    server = UCSServer(Config().replace(store={"url": f"sqlite:///{tmp_path / 'ucs.db'}"}, web={"port": 0}), reactor)
    work = OwnerWork(server.get_registry, server.get_directory, server.get_agents)
    answer = await work.handle("api.call", ["config.users.delete", [1], {"user_id": 1, "state": "ready"}])
    assert answer["ok"] is False and "not carried out by the AMI owner" in answer["error"]["message"]
    answer = await work.handle("api.call", ["call.dial"])
    assert answer["ok"] is False and "api.call takes" in answer["error"]["message"]
    # Its agents not restored yet (not started): a retryable error, nothing carried out.
    answer = await work.handle("agents.logout", [1, "logout"])
    assert answer["ok"] is False and answer["error"]["code"] == 503
    assert "taking over" in answer["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_a_directory_reads_another_nodes_changes_from_the_store(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    try:
        mine, theirs = Directory(store, EventBus()), Directory(store, EventBus())
        await mine.load()
        await theirs.load()
        heard: list[tuple[Any, dict[str, Any]]] = []
        mine._bus.subscribe(EVENT_CONFIG_CHANGE, lambda e, args: heard.append((e, args)))  # type: ignore[union-attr]

        user = await theirs.add("users", {"username": "ann", "password": "first-secret"})
        assert await mine.refresh("users", [user.id]) == 1
        ann = mine.users[user.id]
        assert ann.username == "ann" and mine.user_by_username("ann") is ann
        assert await mine.verify_password(ann, "first-secret")
        assert heard[-1][1] == {"kind": "users", "action": "add", "origin": "cluster"}

        await theirs.edit("users", user.id, {"displayname": "Ann A.", "password": "second-secret"})
        assert await mine.refresh("users", [user.id]) == 1
        assert mine.users[user.id] is ann and ann.displayname == "Ann A."  # the same object, changed
        assert await mine.verify_password(ann, "second-secret")
        assert await mine.refresh("users", [user.id]) == 0  # nothing new: nothing published
        assert heard[-1][1]["action"] == "edit" and len(heard) == 2

        await theirs.delete("users", user.id)
        assert await mine.refresh("users", None) == 1  # the whole kind, as after missed news
        assert user.id not in mine.users and mine.user_by_username("ann") is None
        # Its next id does not give the deleted user's id again.
        assert mine.next_ids()["users"] > user.id
    finally:
        await store.close()
