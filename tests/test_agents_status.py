"""Agent statuses carried out on the simulated Asterisk over TCP: login, READY,
AUX, OFFLINE, logout, refusals, wrap-up after queue calls, pauses made on the
phone or by another AMI client, racing changes, per-queue suspensions and
Asterisk restarts."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from test_agents_harness import close, sqlite_url, stack_on
from twisted.internet.defer import DeferredList, ensureDeferred

from ucs.constants import AGENT_AUX, AgentStatus
from ucs.error import InvalidDataInput, InvalidState, PBXError
from ucs.events import (
    EVENT_AGENT_DEVICE,
    EVENT_AGENT_LOGIN,
    EVENT_AGENT_LOGOUT,
    EVENT_AGENT_RESUME,
    EVENT_AGENT_STATUS,
    EVENT_AGENT_SUSPEND,
)

OFFLINE, READY, AUX, ACW = AgentStatus.OFFLINE, AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW


def statuses(s: Any) -> list[tuple[str, str, str, str]]:
    return [(a["previous"].name, a["previous_reason"], a["status"].name, a["reason"]) for a in s.named(EVENT_AGENT_STATUS)]


@pytest_twisted.ensureDeferred
async def test_login_ready_aux_offline_logout(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice_user = s.user("alice")
        alice = await agents.login(alice_user, s.line("SIP/1001"), session="tab-1")
        await s.settle()
        assert (alice.status, alice.reason) == (READY, "")
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}
        sim_sales = s.sim.queues["sales"].members["SIP/1001"]
        assert (sim_sales.name, sim_sales.penalty, sim_sales.state_iface) == ("Alice Agent", 2, "SIP/1001")
        assert s.named(EVENT_AGENT_LOGIN) == [{"session": "tab-1"}]
        assert s.named(EVENT_AGENT_DEVICE)[0]["line"].device == "SIP/1001"

        await agents.change_status(alice_user.id, "AUX", "lunch")  # the directory's spelling is kept
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
        assert (alice["status"], alice["reason"]) == (AGENT_AUX, "Lunch") and alice["displayname"] == "Alice Agent"
        await agents.change_status(alice_user.id, AgentStatus.READY)
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}

        # OFFLINE: out of every queue, still logged in; READY puts her back
        await agents.change_status(alice_user.id, "OFFLINE")
        assert s.members("SIP/1001") == set() and agents.get(alice_user.id) is alice
        with pytest.raises(InvalidState, match="OFFLINE to ACW"):
            await agents.change_status(alice_user.id, "ACW")
        await agents.change_status(alice_user.id, 1)
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}

        await agents.logout(alice_user.id, "bye")
        assert s.members("SIP/1001") == set() and agents.get(alice_user.id) is None
        assert s.named(EVENT_AGENT_LOGOUT) == [{"reason": "bye"}]
        assert statuses(s) == [
            ("OFFLINE", "", "READY", ""), ("READY", "", "AUX", "Lunch"), ("AUX", "Lunch", "READY", ""),
            ("READY", "", "OFFLINE", ""), ("OFFLINE", "", "READY", ""), ("READY", "", "OFFLINE", ""),
        ]
        with pytest.raises(InvalidState, match="not logged in"):
            await agents.change_status(alice_user.id, "READY")
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_bad_requests_are_named_and_change_nothing(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        uid = s.user("alice").id
        await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        with pytest.raises(InvalidDataInput) as e:
            await agents.change_status(uid, "SLEEPING")
        assert "status" in e.value.message and "OFFLINE, READY, AUX, ACW" in str(e.value)
        with pytest.raises(InvalidDataInput, match="AUX needs a reason; give one of: Lunch, Coffee"):
            await agents.change_status(uid, "AUX", "")
        with pytest.raises(InvalidDataInput, match="'Nap' is not an AUX reason"):
            await agents.change_status(uid, "AUX", "Nap")
        with pytest.raises(InvalidDataInput, match="reserved"):
            await agents.change_status(uid, "AUX", "ACW")
        with pytest.raises(InvalidDataInput, match="is paired with agent alice"):
            await agents.login(s.user("bob"), s.line("SIP/1001"))
        assert s.status("alice") == (READY, "")
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}
        assert len(s.named(EVENT_AGENT_STATUS)) == 1
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_asterisk_refuses_then_link_down(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        d = s.directory
        ghost = await d.add("queues", {"name": "Ghost", "asterisk_name": "ghost"})  # not in Asterisk
        dave = await d.edit("users", s.user("dave").id, {"queues": {"1": {}, str(ghost.id): {}}})
        agents = await s.start()
        agent = await agents.login(dave, s.line("SIP/1004"))
        await s.settle()
        # The login happened; the initial READY did not: Asterisk has no queue "ghost".
        assert agent.status == OFFLINE and s.members("SIP/1004") == set()  # support put back as it was
        with pytest.raises(PBXError, match="Asterisk refused QueueAdd of SIP/1004 in queue ghost: .*No such queue"):
            await agents.change_status(dave.id, "READY")
        assert agent.status == OFFLINE and s.members("SIP/1004") == set()
        assert s.named(EVENT_AGENT_STATUS) == []

        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        await s.client.stopService()
        with pytest.raises(PBXError, match="AMI link is down"):
            await agents.change_status(alice.id, "AUX", "Lunch")
        assert alice.status == READY
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_queue_call_rings_ready_agents_then_wrap_up(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start(acw_seconds=10)
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        bob = await agents.login(s.user("bob"), s.line("SIP/1002"))
        await s.settle()
        await agents.change_status(bob.id, "AUX", "Coffee")
        for phone in ("SIP/1001", "SIP/1002"):
            s.sim.phone(phone).set_behaviour(answer_after=2)

        # rrmemory would ring bob next; he is paused, so only alice rings, twice
        for n in range(2):
            s.sim.caller_calls("5000", f"42077700000{n}", hangup_after=30)
            await s.advance(1)
            assert s.sim.phone("SIP/1001").ringing is not None and not s.sim.phone("SIP/1002").channels
            await s.advance(31)  # answered after 2 s, the customer hangs up 30 s later: at 32
            assert (alice.status, s.members("SIP/1001")) == (ACW, {("support", True, "ACW"), ("sales", True, "ACW")})
            assert not s.sim.phone("SIP/1002").channels and bob.status == AUX
            await s.advance(9.5)
            assert alice.status == ACW
            await s.advance(0.5)
            assert (alice.status, s.members("SIP/1001")) == (READY, {("support", False, ""), ("sales", False, "")})

        # a change during wrap-up ends it at once, and nothing comes back later
        s.sim.caller_calls("5000", "420777000009", hangup_after=5)
        await s.advance(8)
        assert alice.status == ACW
        await agents.change_status(alice.id, "AUX", "Lunch")
        await s.advance(20)
        assert (alice.status, alice.reason) == (AUX, "Lunch")
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}

        # going AUX during a call: wrap-up after it, then back to AUX with its reason
        await agents.change_status(alice.id, "READY")
        s.sim.caller_calls("5000", "420777000010", hangup_after=5)
        await s.advance(3)
        await agents.change_status(alice.id, "AUX", "Meeting")
        await s.advance(5)
        assert alice.status == ACW
        await s.advance(10)
        assert (alice.status, alice.reason) == (AUX, "Meeting")
        assert [a["status"].name for a in s.named(EVENT_AGENT_STATUS) if a is not None][-3:] == ["AUX", "ACW", "AUX"]
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_pauses_made_outside_ucs_are_followed(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        other = await s.other_client()

        # the phone's pause key: every queue at once, reason Coffee
        await other.action("QueuePause", Interface="SIP/1001", Paused="true", Reason="Coffee")
        await s.settle()
        assert (alice.status, alice.reason) == (AUX, "Coffee")
        assert s.members("SIP/1001") == {("support", True, "Coffee"), ("sales", True, "Coffee")}

        # unpaused in one queue only: READY, and the other queue follows
        await other.action("QueuePause", Queue="sales", Interface="SIP/1001", Paused="false")
        await s.settle()
        assert alice.status == READY
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}

        # paused in one queue with a reason UCS does not know: AUX with it, everywhere
        await other.action("QueuePause", Queue="support", Interface="SIP/1001", Paused="true", Reason="Boss")
        await s.settle()
        assert (alice.status, alice.reason) == (AUX, "Boss")
        assert s.members("SIP/1001") == {("support", True, "Boss"), ("sales", True, "Boss")}
        assert statuses(s)[-3:] == [("READY", "", "AUX", "Coffee"), ("AUX", "Coffee", "READY", ""),
                                    ("READY", "", "AUX", "Boss")]

        # a pause with reason "suspended" in one queue is a suspension of that queue
        await agents.change_status(alice.id, "READY")
        await other.action("QueuePause", Queue="sales", Interface="SIP/1001", Paused="true", Reason="suspended")
        await s.settle()
        assert alice.status == READY and alice.suspended == {2}
        assert s.named(EVENT_AGENT_SUSPEND) == [{"queue_id": 2}]
        await other.action("QueuePause", Queue="sales", Interface="SIP/1001", Paused="false")
        await s.settle()
        assert alice.status == READY and alice.suspended == set() and s.named(EVENT_AGENT_RESUME) == [{"queue_id": 2}]
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_racing_changes_end_in_the_last_requested(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        other = await s.other_client()
        # the bar, a plugin and a second tab at once, and the phone's pause key in between
        racing = [
            ensureDeferred(agents.change_status(alice.id, "AUX", "Lunch")),
            ensureDeferred(agents.change_status(alice.id, "READY")),
        ]
        await other.action("QueuePause", Interface="SIP/1001", Paused="true", Reason="Coffee")
        racing.append(ensureDeferred(agents.change_status(alice.id, "AUX", "Meeting")))
        results = await DeferredList(racing, consumeErrors=True)
        await s.settle()
        assert all(ok for ok, _ in results)
        assert (alice.status, alice.reason) == (AUX, "Meeting")
        assert s.members("SIP/1001") == {("support", True, "Meeting"), ("sales", True, "Meeting")}
        # every confirmed step was published once, in order, ending in the last request
        steps = [(a["status"].name, a["reason"]) for a in s.named(EVENT_AGENT_STATUS)]
        assert steps[0] == ("READY", "") and steps[-1] == ("AUX", "Meeting")
        assert ("AUX", "Lunch") in steps and steps.index(("AUX", "Lunch")) < len(steps) - 1
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_suspend_and_resume_one_queue(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        await agents.suspend(alice.id, 2)
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", True, "suspended")}
        assert alice.status == READY and alice.to_dict()["queues"][2]["suspended"] is True
        assert s.named(EVENT_AGENT_SUSPEND) == [{"queue_id": 2}]
        await agents.suspend(alice.id, 2)  # again: nothing more
        assert len(s.named(EVENT_AGENT_SUSPEND)) == 1

        await agents.change_status(alice.id, "AUX", "Lunch")
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "suspended")}
        await agents.change_status(alice.id, "READY")
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", True, "suspended")}
        await s.advance(30)
        assert alice.to_dict()["queues"][2]["suspendtime"] == 30

        await agents.resume(alice.id, 2)
        assert s.members("SIP/1001") == {("support", False, ""), ("sales", False, "")}
        assert s.named(EVENT_AGENT_RESUME) == [{"queue_id": 2}]
        assert alice.to_dict()["queues"][2]["suspended"] is False

        # a queue call in the suspended queue does not ring her
        await agents.suspend(alice.id, 2)
        s.sim.phone("SIP/1001").set_behaviour(answer_after=1)
        s.sim.caller_calls("5001", "420777000001", abandon_after=5)
        await s.advance(3)
        assert not s.sim.phone("SIP/1001").channels

        with pytest.raises(InvalidDataInput, match="7 is not one of alice's queues; theirs: 1, 2"):
            await agents.suspend(alice.id, 7)
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_asterisk_restart_puts_memberships_back(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        bob = await agents.login(s.user("bob"), s.line("SIP/1002"))
        carol = await agents.login(s.user("carol"), s.line("SIP/1003"))
        await s.settle()
        await agents.change_status(bob.id, "AUX", "Lunch")
        await agents.change_status(carol.id, "OFFLINE")
        await agents.suspend(alice.id, 2)
        before = s.sim_members()
        published = len(s.named(EVENT_AGENT_STATUS))

        synced = s.link.whenSynced()
        s.sim.restart()  # core restart now: dynamic members are gone
        await synced
        await s.settle()
        assert s.sim_members() == before == {
            ("support", "SIP/1001", False, ""), ("sales", "SIP/1001", True, "suspended"),
            ("support", "SIP/1002", True, "Lunch"),
        }
        assert s.ucs_members() == before
        assert (alice.status, bob.status, bob.reason, carol.status) == (READY, AUX, "Lunch", OFFLINE)
        assert len(s.named(EVENT_AGENT_STATUS)) == published  # nothing changed for anyone
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_counted_only_when_asterisk_confirms(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start(confirm_timeout=4.0)
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        published = len(s.named(EVENT_AGENT_STATUS))
        # UCS's AMI session stops receiving agent events: Asterisk answers "Success" but the
        # QueueMemberPause events never reach the model
        await s.client.sendAction("Events", {"EventMask": "system,call"})
        change = ensureDeferred(agents.change_status(alice.id, "AUX", "Lunch"))
        await s.settle()
        assert s.sim_members("SIP/1001") == {("support", "SIP/1001", True, "Lunch"), ("sales", "SIP/1001", True, "Lunch")}
        assert not change.called and alice.status == READY  # responses alone count for nothing
        s.clock.advance(4.0)
        with pytest.raises(PBXError, match="Asterisk did not confirm that SIP/1001 is paused \\(Lunch\\) in queue"):
            await change
        assert alice.status == READY and len(s.named(EVENT_AGENT_STATUS)) == published

        # the events are back and UCS resyncs: what Asterisk did is followed
        await s.client.sendAction("Events", {"EventMask": "on"})
        await s.link.resync()
        await s.settle()
        assert (alice.status, alice.reason) == (AUX, "Lunch")
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
    finally:
        await close(s)


@pytest_twisted.ensureDeferred
async def test_directory_changes_and_a_new_phone(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path))
    try:
        agents = await s.start()
        d = s.directory
        alice = await agents.login(s.user("alice"), s.line("SIP/1001"))
        await s.settle()
        await agents.change_status(alice.id, "AUX", "Lunch")

        # her queues change while she works: she leaves sales, joins it again with another priority
        await d.edit("users", alice.id, {"queues": {"1": {}}})
        await s.settle()
        assert s.members("SIP/1001") == {("support", True, "Lunch")}
        await d.edit("users", alice.id, {"queues": {"1": {}, "2": {"priorities": 5}}})
        await s.settle()
        assert s.members("SIP/1001") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
        assert s.sim.queues["sales"].members["SIP/1001"].penalty == 5

        # she moves to another desk: memberships follow the phone, status kept
        same = await agents.login(s.user("alice"), s.line("SIP/1003"))
        await s.settle()
        assert same is alice and alice.line.device == "SIP/1003" and (alice.status, alice.reason) == (AUX, "Lunch")
        assert s.sim_members("SIP/1001") == set()
        assert s.members("SIP/1003") == {("support", True, "Lunch"), ("sales", True, "Lunch")}
        assert s.named(EVENT_AGENT_DEVICE)[-1]["line"].device == "SIP/1003"

        # her line is deleted: she is logged out; bob's user is deleted: so is he
        bob = await agents.login(s.user("bob"), s.line("SIP/1002"))
        await s.settle()
        await d.delete("lines", alice.line.id)
        await d.delete("users", bob.id)
        await s.settle()
        assert agents.all() == [] and s.sim_members() == set()
        assert [a["reason"] for a in s.named(EVENT_AGENT_LOGOUT)] == ["line deleted", "user deleted"]
    finally:
        await close(s)
