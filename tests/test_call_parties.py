"""Seed 002's Call object names its parties in UCS's terms: the caller's and the
connected party's line, user, group and extension, the called name, ``now``; and
the caller lookup's OUTGOING / INTERNAL directions name those calls (issue 17).

On the simulated Asterisk over real AMI TCP (``test_control_stack.Stack``), a
directory in a SQLite store, and what the bus carries as each event is told.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
from test_control_stack import started
from twisted.internet import reactor

from ucs.bus import EventBus
from ucs.directory.directory import Directory
from ucs.events import EVENT_CALL_CHANGE, EVENT_CALL_CONNECT, EVENT_CALL_RINGING
from ucs.lookup import LookupService, StaticSource
from ucs.lookup.calls import CallerLookup
from ucs.lookup.parties import PartyFiller
from ucs.sim.lab import CUSTOMER
from ucs.store import open_store


async def floor(tmp_path: Path) -> tuple[Any, Directory, dict[str, Any]]:
    store = await open_store(f"sqlite:///{tmp_path / 'ucs.db'}", reactor)
    d = Directory(store, EventBus())
    await d.load()
    support = await d.add("groups", {"name": "Support"})
    lines = {n: await d.add("lines", {"device": f"SIP/{n}", "name": f"Desk {n}"}) for n in ("1001", "1002", "1003")}
    alice = await d.add("users", {"username": "alice", "displayname": "Alice Agent", "group_id": support.id,
                                  "primary_extension": lines["1001"].id})
    bob = await d.add("users", {"username": "bob", "displayname": "Bob Builder", "lines": [lines["1002"].id]})
    return store, d, {"support": support, "alice": alice, "bob": bob, **lines}


def told(stack: Any, *names: str) -> list[tuple[str, dict[str, Any]]]:
    """Each call event as the bus carried it (the Call object at that moment)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        stack.bus.subscribe(name, lambda call, args, name=name: seen.append((name, call.to_dict(stack.clock.seconds()))))
    return seen


@pytest_twisted.ensureDeferred
async def test_an_internal_call_names_both_colleagues_from_the_directory(tmp_path: Path) -> None:
    store, d, f = await floor(tmp_path)
    s = await started()
    s.tracker.observers.insert(0, PartyFiller(d))
    seen = told(s, EVENT_CALL_RINGING, EVENT_CALL_CONNECT)
    try:
        s.sim.call_from_line(s.sim.line("SIP/1001"), "1002")
        await s.advance(2.0)
        (ringing, ring), (connect, conn) = seen
        assert (ringing, connect) == (EVENT_CALL_RINGING, EVENT_CALL_CONNECT)
        # Ringing: Bob's phone rings for Alice; the bar can name both before anyone answers.
        assert {k: ring[k] for k in ("caller_extension", "caller_line_id", "caller_user_id", "caller_username",
                                     "caller_group_id", "called_name")} == {
            "caller_extension": "1001", "caller_line_id": f["1001"].id, "caller_user_id": f["alice"].id,
            "caller_username": "alice", "caller_group_id": f["support"].id, "called_name": "Bob Builder"}
        assert ring["connected_line_id"] is None and ring["connected_username"] == ""
        # Connected: Bob (a user with the line listed, in no group) answered.
        assert {k: conn[k] for k in ("connected_extension", "connected_line_id", "connected_user_id",
                                     "connected_username", "connected_group_id")} == {
            "connected_extension": "1002", "connected_line_id": f["1002"].id, "connected_user_id": f["bob"].id,
            "connected_username": "bob", "connected_group_id": None}
        assert conn["now"] == conn["connected"] and conn["caller_username"] == "alice"
    finally:
        await s.stop()
        await store.close()


@pytest_twisted.ensureDeferred
async def test_the_agent_paired_with_a_line_is_its_user_and_a_customer_is_no_line(tmp_path: Path) -> None:
    store, d, f = await floor(tmp_path)
    s = await started()
    # Bob logged in on Alice's desk phone: the calls on it are his.
    s.tracker.observers.insert(0, PartyFiller(d, lambda device: f["bob"] if device == "SIP/1001" else None))
    seen = told(s, EVENT_CALL_CONNECT)
    try:
        call = await s.incoming()
        (_, conn), = seen
        assert (conn["caller_line_id"], conn["caller_user_id"], conn["caller_username"],
                conn["caller_extension"], conn["caller_group_id"]) == (None, None, "", "", None)
        assert conn["caller_number"] == CUSTOMER
        assert (conn["connected_line_id"], conn["connected_user_id"], conn["connected_username"]) == (
            f["1001"].id, f["bob"].id, "bob")
        assert call.to_dict()["now"] == call.created  # no clock given: the call's own time
    finally:
        await s.stop()
        await store.close()


@pytest_twisted.ensureDeferred
async def test_outgoing_and_internal_calls_are_looked_up_when_configured() -> None:
    s = await started()
    table = StaticSource(1, {"0777999888": {"name": "Supplier Ltd", "external_id": "S-9"},
                             "1003": {"name": "Carol from the table"}})
    filler = CallerLookup(LookupService([table]), s.bus, s.clock, directions=("OUTGOING", "INTERNAL"),
                          normalized=False)
    s.tracker.observers.insert(0, filler)
    seen = told(s, EVENT_CALL_RINGING, EVENT_CALL_CONNECT, EVENT_CALL_CHANGE)
    try:
        s.sim.call_from_line(s.sim.line("SIP/1001"), "0777999888")  # an agent calls a supplier
        await s.advance(2.5)
        out = [d for _, d in seen if d["direction"] == "OUTGOING"]
        assert out and out[-1]["name"] == "Supplier Ltd" and out[-1]["external_id"] == "S-9"
        assert out[-1]["called_name"] == "Supplier Ltd" and out[-1]["number"] == "0777999888"
        seen.clear()
        s.sim.call_from_line(s.sim.line("SIP/1003"), "1002")  # a colleague calls
        await s.advance(2.5)
        internal = [d for _, d in seen if d["direction"] == "INTERNAL"]
        assert internal and internal[-1]["name"] == "Carol from the table"
        # Incoming calls are not among the directions: not looked up.
        s.sim.caller_calls("5000", CUSTOMER)  # waits in the queue (nobody in it)
        await s.advance(1.0)
        (incoming,) = [c for c in s.tracker.active_calls() if c.direction == "INCOMING"]
        assert incoming.caller_number == CUSTOMER and incoming.name == ""
    finally:
        await s.stop()
