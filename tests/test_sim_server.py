"""The simulator's AMI server over real TCP: login, errors, filters, flow control, restart."""

from __future__ import annotations

import hashlib
import socket

import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.task import Clock

from ucs.sim.lab import lab
from ucs.sim.testing import AMITestClient, SimHarness


async def _harness(**options: object) -> SimHarness:
    return await SimHarness.start(lab(Clock()), **options)


def _turn() -> object:
    return task.deferLater(reactor, 0, lambda: None)


@pytest_twisted.ensureDeferred
async def test_banner_and_md5_login() -> None:
    h = await _harness()
    try:
        c = await h.client()
        ch = await c.action("Challenge", AuthType="MD5")
        assert c.parser.banner == "Asterisk Call Manager/9.0.0"
        assert ch["Response"] == "Success" and ch["Challenge"].isdigit()
        key = hashlib.md5((ch["Challenge"] + "ucslab").encode()).hexdigest()
        resp = await c.action("Login", AuthType="MD5", Username="ucs", Key=key)
        assert (resp["Response"], resp["Message"]) == ("Success", "Authentication accepted")
        await c.barrier()
        booted = c.events("FullyBooted")
        assert booted and booted[0]["Status"] == "Fully Booted" and booted[0]["Privilege"] == "system,all"
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_wrong_key_is_refused_and_the_link_closed() -> None:
    h = await _harness()
    try:
        c = await h.client()
        await c.action("Challenge", AuthType="MD5")
        resp = await c.action("Login", AuthType="MD5", Username="ucs", Key="0" * 32)
        assert (resp["Response"], resp["Message"]) == ("Error", "Authentication failed")
        await c.closed
        c2 = await h.client()
        resp = await c2.action("Login", Username="ucs", Secret="wrong")
        assert resp["Message"] == "Authentication failed"
        await c2.closed
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_actions_need_login_and_unknown_actions_are_named() -> None:
    h = await _harness()
    try:
        c = await h.client()
        resp = await c.action("QueueStatus")
        assert (resp["Response"], resp["Message"]) == ("Error", "Permission denied")
        await c.login()
        resp = await c.action("PJSIPShowEndpoints")
        assert resp["Response"] == "Error"
        assert resp["Message"] == (
            "Invalid/unknown command: PJSIPShowEndpoints. Use Action: ListCommands to show available commands."
        )
        resp = await c.send([("ActionID", "no-action"), ("Queue", "support")])
        assert resp["Message"] == "Missing action in request"
        resp = await c.action("QueueAdd", Queue="support")
        assert resp["Message"] == "'Interface' not specified."
        resp = await c.action("QueueAdd", Interface="SIP/1001")
        assert resp["Message"] == "'Queue' not specified."
        resp = await c.action("QueueAdd", Queue="nosuch", Interface="SIP/1001")
        assert resp["Message"] == "Unable to add interface to queue: No such queue"
        resp = await c.action("QueuePause", Interface="SIP/1001", Paused="true")
        assert resp["Message"] == "Interface not found"
        resp = await c.action("Hangup", Channel="SIP/1001-000000ff")
        assert resp["Message"] == "No such channel"
        resp = await c.action("Ping")
        assert resp["Ping"] == "Pong" and float(resp["Timestamp"]) > 1e9
        # The link still works after all those errors.
        resp = await c.action("QueueAdd", Queue="support", Interface="SIP/1001", MemberName="Alice Agent")
        assert resp["Message"] == "Added interface to queue"
        resp = await c.action("QueueAdd", Queue="support", Interface="SIP/1001", MemberName="Alice Agent")
        assert (resp["Response"], resp["Message"]) == ("Error", "Unable to add interface: Already there")
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_event_filters_per_client() -> None:
    h = await _harness()
    try:
        everything, classes, nothing = await h.client(), await h.client(), await h.client()
        await everything.login(events="on")
        await classes.login(events="system,call,agent")
        await nothing.login(events="off")
        await everything.action("QueueAdd", Queue="support", Interface="SIP/1001", MemberName="Alice Agent")
        h.sim.phone("SIP/1001").set_behaviour(answer_after=1)
        h.sim.caller_calls("5000", hangup_after=1)
        h.advance(4)
        for c in (everything, classes, nothing):
            await c.barrier()
        all_names = {m["Event"] for m in everything.events()}
        class_names = {m["Event"] for m in classes.events()}
        assert {"VarSet", "Newexten", "SuccessfulAuth", "AgentConnect", "Hangup"} <= all_names
        assert {"AgentConnect", "Hangup", "QueueMemberAdded", "FullyBooted"} <= class_names
        assert not class_names & {"VarSet", "Newexten", "SuccessfulAuth"}
        for m in classes.events():
            assert set(m["Privilege"].split(",")) & {"system", "call", "agent"}, m
        assert nothing.events() == []
        # The Events action switches a client's filter.
        resp = await nothing.action("Events", EventMask="agent")
        assert resp["Message"] == "Events On"
        await everything.action("QueueRemove", Queue="support", Interface="SIP/1001")
        await nothing.barrier()
        assert [m["Event"] for m in nothing.events()] == ["QueueMemberRemoved"]
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_slow_reader_does_not_grow_memory_and_is_dropped_when_stalled() -> None:
    limit = 64 * 1024
    h = await _harness(max_backlog=limit, stall_timeout=30.0)
    try:
        c = await h.client()
        await c.login()
        session = next(iter(h.server.sessions))
        # Small socket buffers, and a client that stops reading.
        session.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        c.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.transport.pauseProducing()
        peak = 0
        for _ in range(200):
            h.sim.caller_calls("6000")
            h.clock.advance(0)
            peak = max(peak, session.backlog_bytes)
            await _turn()
            if session.dropped:
                break
        assert session.dropped > 0, "a reader that never reads must lose events"
        assert peak <= limit
        # Once it reads again, the link still works (responses are never dropped).
        c.transport.resumeProducing()
        await c.barrier()
        # A client that stays stalled is disconnected after stall_timeout.
        c.transport.pauseProducing()
        for _ in range(200):
            h.sim.caller_calls("6000")
            await _turn()
            if session._paused:
                break
        assert session._paused
        h.clock.advance(31)
        c.transport.resumeProducing()
        await c.closed
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_restart_drops_members_and_channels() -> None:
    h = await _harness()
    try:
        c = await h.client()
        await c.login()
        await c.action("QueueAdd", Queue="support", Interface="SIP/1001", MemberName="Alice Agent")
        h.sim.phone("SIP/1001").set_behaviour(answer_after=1)
        h.sim.caller_calls("5000")
        h.advance(3)
        await c.barrier()
        assert len(h.sim.channels) == 2
        h.sim.restart(downtime=5)
        await c.closed
        assert [m["Event"] for m in c.events()][-1] == "Shutdown"
        assert c.events("Shutdown")[0]["Restart"] == "True"
        assert h.sim.channels == {} and h.sim.bridges == {}
        # While Asterisk is down, a connection is closed at once, without a banner.
        down = await h.client()
        await down.closed
        assert down.parser.banner is None and down.messages == []
        h.advance(5)
        c2 = await h.client()
        await c2.login()
        resp = await c2.action("QueueStatus")
        await c2.barrier()
        assert resp["Message"] == "Queue status will follow"
        assert c2.events("QueueMember") == []
        assert {m["Queue"] for m in c2.events("QueueParams")} == {"support", "sales"}
        await c2.action("CoreShowChannels")
        await c2.barrier()
        assert c2.events("CoreShowChannelsComplete")[0]["ListItems"] == "0"
        assert int(c2.events("FullyBooted")[0]["Uptime"]) < 2
        # Members can be put back.
        resp = await c2.action("QueueAdd", Queue="support", Interface="SIP/1001", MemberName="Alice Agent")
        assert resp["Message"] == "Added interface to queue"
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_originate_sync_answers_when_the_phone_answers() -> None:
    h = await _harness()
    try:
        c = await h.client()
        await c.login()
        h.sim.phone("SIP/1002").set_behaviour(answer_after=2)
        d = c.action("Originate", Channel="SIP/1002", Application="Wait", Data="3", Timeout="10000")
        other = await h.client()
        await other.login()
        await other.barrier()
        assert h.sim.phone("SIP/1002").ringing is not None
        # Like Asterisk, the session answers nothing else until the Originate is done.
        ping = c.action("Ping")
        await other.barrier()
        assert not d.called and not ping.called, "a synchronous Originate answers once the call is up"
        h.advance(2.5)
        resp = await d
        assert (resp["Response"], resp["Message"]) == ("Success", "Originate successfully queued")
        await ping
        h.advance(4)
        await c.barrier()
        assert h.sim.channels == {}
        # Busy and no-answer are reported as OriginateResponse reasons 5 and 3.
        h.sim.phone("SIP/1002").set_behaviour(busy=True)
        h.sim.phone("SIP/1003").set_behaviour(answer_after=None)
        await c.action("Originate", Channel="SIP/1002", Exten="1001", Context="internal", Async="true")
        await c.action("Originate", Channel="SIP/1003", Exten="1001", Context="internal", Async="true", Timeout="5000")
        h.advance(6)
        await c.barrier()
        reasons = sorted(m["Reason"] for m in c.events("OriginateResponse"))
        assert reasons == ["3", "5"]
        assert all(m["Response"] == "Failure" for m in c.events("OriginateResponse"))
    finally:
        await h.stop()


@pytest_twisted.ensureDeferred
async def test_logoff_says_goodbye_and_closes() -> None:
    h = await _harness()
    try:
        c = await h.client()
        await c.login()
        resp = await c.action("Logoff")
        assert (resp["Response"], resp["Message"]) == ("Goodbye", "Thanks for all the fish.")
        await c.closed
    finally:
        await h.stop()


def test_client_type_is_exported() -> None:
    assert AMITestClient.send is not None


@pytest_twisted.ensureDeferred
async def test_list_commands_names_every_action_it_answers() -> None:
    from ucs.sim.actions import ACTION_NAMES

    h = await _harness()
    try:
        c = await h.client()
        await c.login()
        resp = await c.action("ListCommands")
        assert resp["Response"] == "Success"
        assert {k for k in resp if k not in ("Response", "ActionID")} == set(ACTION_NAMES)
        assert set(h.server.actions.names) == {n.lower() for n in ACTION_NAMES}
    finally:
        await h.stop()
