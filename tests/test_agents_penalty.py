"""A membership's priority (Asterisk's Penalty) kept in step while the agent works:
``QueuePenalty`` when it differs, never when only the status changes (issue 19).

On the simulated Asterisk over TCP (``test_agents_harness``); another AMI client
watches Asterisk's member events: each ``QueuePenalty`` shows as a
``QueueMemberPenalty``, even one that changes nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_agents_harness import close, sqlite_url, stack_on
from twisted.internet.defer import ensureDeferred, maybeDeferred

from ucs.constants import AgentStatus
from ucs.error import PBXError
from ucs.events import EVENT_AGENT_STATUS
from ucs.sim.testing import AMITestClient

READY, AUX = AgentStatus.READY, AgentStatus.AUX


async def seen(other: AMITestClient, device: str) -> list[tuple[str, str, str]]:
    """(event, queue, penalty) of the member events about ``device`` since the last call; cleared."""
    await other.barrier()
    out = [(m["Event"], m["Queue"], m.get("Penalty", "")) for m in other.events()
           if m["Event"].startswith("QueueMember") and m.get("Interface") == device]
    other.messages.clear()
    return out


def penalties(s: Any, device: str) -> dict[str, int]:
    """The phone's penalties as the simulated Asterisk has them, checked to be UCS's model's too."""
    sim = {q.name: q.members[device].penalty for q in s.sim.queues.values() if device in q.members}
    ucs = {q.name: q.members[device].penalty for q in s.pbx.queues.values() if device in q.members}
    assert sim == ucs, (sim, ucs)
    return sim


@pytest_twisted.ensureDeferred
async def test_priority_changes_reach_asterisk_and_status_changes_send_no_penalty(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        d = s.directory
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        other = await s.other_client()
        assert penalties(s, "SIP/1001") == {"support": 0, "sales": 2}
        await seen(other, "SIP/1001")

        # status changes: pauses only, no QueuePenalty
        await agents.change_status(alice.id, "AUX", "Lunch")
        await agents.change_status(alice.id, "READY")
        await s.settle()
        assert sorted(await seen(other, "SIP/1001")) == [
            ("QueueMemberPause", "sales", "2"), ("QueueMemberPause", "sales", "2"),
            ("QueueMemberPause", "support", "0"), ("QueueMemberPause", "support", "0")]

        # her priority in support changes while she is in AUX: a QueuePenalty there, nothing else
        await agents.change_status(alice.id, "AUX", "Lunch")
        await s.settle()
        await seen(other, "SIP/1001")
        published = len(s.named(EVENT_AGENT_STATUS))
        await d.edit("users", alice.id, {"queues": {"1": {"priorities": 4}, "2": {"priorities": 2}}})
        await s.settle()
        assert penalties(s, "SIP/1001") == {"support": 4, "sales": 2}
        assert await seen(other, "SIP/1001") == [("QueueMemberPenalty", "support", "4")]
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
        assert (alice.status, alice.reason) == (AUX, "Lunch") and len(s.named(EVENT_AGENT_STATUS)) == published

        # an edit that changes nothing on Asterisk sends nothing
        await d.edit("users", alice.id, {"queues": {"1": {"priorities": 4}, "2": {"priorities": 2}}, "firstname": "Alicia"})
        await s.settle()
        assert await seen(other, "SIP/1001") == []

        # a penalty changed outside UCS is left alone (no fight) until UCS next brings her
        # queues in line: then both the pause and the penalty of sales, at once
        await other.action("QueuePenalty", Interface="SIP/1001", Penalty="9", Queue="sales")
        await s.settle()
        assert penalties(s, "SIP/1001") == {"support": 4, "sales": 9}
        assert (alice.status, alice.reason) == (AUX, "Lunch")
        await seen(other, "SIP/1001")
        await agents.change_status(alice.id, "READY")
        await s.settle()
        assert sorted(await seen(other, "SIP/1001")) == [
            ("QueueMemberPause", "sales", "9"), ("QueueMemberPause", "support", "4"), ("QueueMemberPenalty", "sales", "2")]
        assert penalties(s, "SIP/1001") == {"support": 4, "sales": 2}
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")} and alice.status == READY
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_a_penalty_asterisk_does_not_confirm_is_an_error_naming_it(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start(confirm_timeout=4.0)
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        # UCS's AMI session stops receiving agent events: the QueueMemberPenalty never reaches the model
        await s.client.sendAction("Events", {"EventMask": "system,call"})
        s.directory.users[alice.id].queues[1].priority = 6
        reapplied = ensureDeferred(agents.apply(alice, alice.status, alice.reason))
        await s.settle()
        assert s.sim.queues["support"].members["SIP/1001"].penalty == 6 and not reapplied.called
        s.clock.advance(4.0)
        with pytest.raises(PBXError, match=r"^Asterisk did not confirm that SIP/1001 has penalty 6 in queue support within 4 s$"):
            await reapplied
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_a_priority_changed_while_ucs_was_stopped_is_brought_at_the_next_start(tmp_path: Any) -> None:
    """``ucs-admin --direct`` on the store while UCS is stopped: the next start's
    reconciliation brings the penalty (Asterisk kept the memberships meanwhile)."""
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await agents.change_status(alice.id, "AUX", "Lunch")
        await s.settle()
        await agents.stop()
        await maybeDeferred(s.client.stopService)
        s.directory._bus = None  # stored only, as ucs-admin --direct does while UCS is stopped
        await s.directory.edit("users", alice.id, {"queues": {"1": {"priorities": 3}, "2": {"priorities": 2}}})
        assert penalties(s, "SIP/1001") == {"support": 0, "sales": 2}

        s._connect()
        await s.load_directory()
        agents = await s.start()
        await s.settle()
        assert s.status("alice") == (AUX, "Lunch")
        assert penalties(s, "SIP/1001") == {"support": 3, "sales": 2}
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_a_penalty_changed_unheard_is_read_at_the_resync_and_put_back(tmp_path: Any) -> None:
    """The resync reads each member's Penalty from QueueStatus: a change UCS did not hear
    (its link missed the event) is found there and the directory's priority put back."""
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        other = await s.other_client()
        await s.client.sendAction("Events", {"EventMask": "system,call"})  # UCS hears no agent event
        await other.action("QueuePenalty", Interface="SIP/1001", Penalty="9", Queue="sales")
        await s.settle()
        assert s.sim.queues["sales"].members["SIP/1001"].penalty == 9
        assert s.pbx.queues["sales"].members["SIP/1001"].penalty == 2  # unheard
        await s.client.sendAction("Events", {"EventMask": "on"})
        await seen(other, "SIP/1001")
        await s.link.resync()
        await s.settle()
        assert await seen(other, "SIP/1001") == [("QueueMemberPenalty", "sales", "2")]
        assert penalties(s, "SIP/1001") == {"support": 0, "sales": 2}
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_a_member_already_there_gets_the_pause_and_the_penalty(tmp_path: Any) -> None:
    """Asterisk has the member UCS's model does not know (added while UCS's link heard no
    agent events): QueueAdd "Already there" becomes QueuePause and QueuePenalty."""
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        other = await s.other_client()
        await s.client.sendAction("Events", {"EventMask": "system,call"})
        await other.action("QueueAdd", Queue="sales", Interface="SIP/1001", Penalty="7", Paused="true", Reason="Old")
        await s.settle()
        sales = s.pbx.queues.get("sales")
        assert sales is None or "SIP/1001" not in sales.members  # UCS did not hear it
        await s.client.sendAction("Events", {"EventMask": "on"})
        await seen(other, "SIP/1001")
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        assert alice.status == READY
        assert sorted(await seen(other, "SIP/1001")) == [
            ("QueueMemberAdded", "support", "0"), ("QueueMemberPause", "sales", "7"), ("QueueMemberPenalty", "sales", "2")]
        assert penalties(s, "SIP/1001") == {"support": 0, "sales": 2}
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}
    finally:
        await close(s)
