"""A supervisor's monitoring is not a call (:mod:`ucs.calls.spying`), end to end: the whole
UCS on the simulated PBX over AMI TCP, the CDRs in its store.  The spy leg on the
supervisor's phone gets no CDR of its own (so no recent call, no missed call), the
figures of the phone's agent and of the queue do not count it, the supervisor's bar shows
it as monitoring; the monitored call's CDR says who monitored it, how, from when to when.
Both the monitoring UCS asks for (``supervisor.monitor``) and one it did not (an
``Originate`` to ChanSpy by another program, on an agent's phone): recognised from what
Asterisk says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import until
from test_supervisor import pushed, sim, supervisor
from test_web_api import Client, ready_agent, start, user_id
from twisted.internet import defer, reactor

from ucs.server import UCSServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UCSServer]:
    srv = pytest_twisted.blockon(defer.ensureDeferred(start(tmp_path)))
    yield srv
    pytest_twisted.blockon(srv.service.stopService())


def channel_of(server: UCSServer, device: str) -> Any:
    return next((c for c in sim(server).channels.values() if c.name.startswith(device + "-")), None)


async def answered_queue_call(server: UCSServer, number: str) -> Any:
    """A customer calls the support queue; agent 1's phone answers: its channel."""
    sim(server).caller_calls("5000", number, "Customer")
    await until(lambda: channel_of(server, "SIP/1001") is not None)
    sim(server).phone("SIP/1001").answer()
    await until(lambda: any(c.connected and c.caller_number == number for c in server.get_call_tracker().active_calls()))
    return channel_of(server, "SIP/1001")


def customer_hangs_up(server: UCSServer) -> None:
    for ch in [c for c in sim(server).channels.values() if c.name.startswith("SIP/carrier")]:
        sim(server).hangup_channel(ch)


def calls_told(c: Client) -> list[dict[str, Any]]:
    return [m["data"] for m in c.inbox if str(m.get("event", "")).startswith("call.")]


async def cdrs(server: UCSServer, **kw: Any) -> list[dict[str, Any]]:
    await server.get_cdr_writer().flushed()
    return list(await server.get_store().list_cdrs(**kw))


@pytest_twisted.ensureDeferred
async def test_monitoring_is_on_the_monitored_calls_cdr_and_is_no_call(server: UCSServer) -> None:
    sup = await supervisor(server)  # phone SIP/1004, no agent
    a1 = await ready_agent(server, 1)
    a2 = await ready_agent(server, 2)
    uid1, uid2 = user_id(server, 1), user_id(server, 2)
    await sup.call("agents.changeStatus", [uid2, "AUX", "Meeting"])  # agent 2 takes no queue call
    board = await sup.call("wallboard.subscribe")
    assert {q["asterisk_name"]: q for q in board["queues"]}["support"]["answered"] == 0

    # 1. UCS's own: the supervisor whispers to agent 1.
    agent_channel = await answered_queue_call(server, "420777123456")
    result = await sup.call("supervisor.monitor", [uid1, "whisper"])
    await until(lambda: sim(server).phone("SIP/1004").ringing)
    # The supervisor's bar is told from the first event that the phone rings for monitoring.
    told = await pushed(sup, "call.new", lambda d: True)
    assert told["monitoring"]["mode"] == "whisper" and told["monitoring"]["by"] == "supervisor"
    assert told["monitoring"]["channel"] == result["channel"]
    sim(server).phone("SIP/1004").answer()
    await until(lambda: any(j.mode == "whisper" for j in sim(server).spies_of(agent_channel)), 10)
    spy = channel_of(server, "SIP/1004")
    # ChanSpyStart names the monitored call: the session says whose it is.
    await pushed(sup, "call.change", lambda d: (d["monitoring"] or {}).get("device") == "SIP/1001", 10)
    customer_hangs_up(server)  # ChanSpyStop, the agent's hang-up, then E ends the supervisor's leg
    await until(lambda: channel_of(server, "SIP/1004") is None, 10)
    await until(lambda: not server.get_call_tracker().active_calls(), 10)

    [cdr] = await cdrs(server)  # the customer's call only
    assert (cdr["direction"], cdr["queue"], cdr["answered_by"], cdr["cause"]) == ("INCOMING", "support", "SIP/1001", 3)
    [watched] = cdr["data"]["monitors"]
    assert {k: watched[k] for k in ("by", "device", "channel", "spied", "mode")} == {
        "by": "supervisor", "device": "SIP/1004", "channel": spy.name, "spied": "SIP/1001", "mode": "whisper"}
    assert cdr["connected"] <= watched["started"] <= watched["stopped"] <= cdr["disconnected"]
    assert await cdrs(server, devices=["SIP/1004"]) == []  # nothing in the supervisor's recent calls
    # The agent's bar was never told it was listened to.
    assert all("monitors" not in d and d.get("monitoring") is None for d in calls_told(a1))

    # 2. Another program's: an Originate of agent 2's phone to ChanSpy(<agent 1's channel>,qBE);
    #    agent 2 hangs up first, the customer's call goes on.
    await until(lambda: server.get_agents().get(uid1).status.name == "ACW")  # after the queue call
    await sup.call("agents.changeStatus", [uid1, "READY", ""])
    agent_channel = await answered_queue_call(server, "420777000111")
    sim(server).originate("SIP/1002", application="ChanSpy", data=f"{agent_channel.name},qBE", action_id="script-1")
    await until(lambda: sim(server).phone("SIP/1002").ringing)
    sim(server).phone("SIP/1002").answer()
    await until(lambda: any(j.mode == "barge" for j in sim(server).spies_of(agent_channel)), 10)
    tracker = server.get_call_tracker()
    await until(lambda: any((c.monitoring or {}).get("device") == "SIP/1001" for c in tracker.calls_of_device("SIP/1002")))
    [spying] = tracker.calls_of_device("SIP/1002")
    assert spying.monitoring is not None and spying.monitoring["mode"] == "barge" and spying.monitoring["by"] is None
    await until(lambda: any(d.get("monitoring") for d in calls_told(a2)))  # agent 2's bar: monitoring, not a call
    sim(server).phone("SIP/1002").hangup()
    await until(lambda: channel_of(server, "SIP/1002") is None, 10)
    assert channel_of(server, "SIP/1001") is not None  # the call goes on
    customer_hangs_up(server)
    await until(lambda: not server.get_call_tracker().active_calls(), 10)

    first, second = await cdrs(server)
    assert second["caller_number"] == "420777000111"
    [watched] = second["data"]["monitors"]
    assert (watched["by"], watched["device"], watched["spied"], watched["mode"]) == (None, "SIP/1002", "SIP/1001", "barge")
    assert second["connected"] <= watched["started"] <= watched["stopped"] < second["disconnected"]
    assert await cdrs(server, devices=["SIP/1002"]) == []
    # Agent 2's figures count no call, and it stays in AUX (no after-call work); agent 1's two.
    stats2 = server.get_agents().get(uid2).stats_now()
    assert (stats2.in_calls_answered, stats2.in_calls_unanswered, stats2.out_calls_answered,
            stats2.out_calls_unanswered) == (0, 0, 0, 0)
    assert server.get_agents().get(uid2).status.name == "AUX"
    assert server.get_agents().get(uid1).stats_now().in_calls_answered == 2
    # The queue's: two calls offered, two answered.
    wb = await pushed(sup, "wallboard", lambda d: {q["asterisk_name"]: q for q in d["queues"]}["support"]["answered"] == 2)
    support = {q["asterisk_name"]: q for q in wb["queues"]}["support"]
    assert support["abandoned"] == 0
    figures = server.get_supervision().intervals.day_total("queue", "support", server.get_supervision().days.day(
        reactor.seconds()))
    assert (figures.get("offered"), figures.get("answered")) == (2, 2)
    for c in (sup, a1, a2):
        c.close()


@pytest_twisted.ensureDeferred
async def test_a_monitoring_begun_while_the_link_was_down_is_no_call_either(server: UCSServer) -> None:
    """UCS missed the spy leg's birth (the AMI link was down): the resync's ``CoreShowChannel``
    says it runs ChanSpy, which is enough to keep it out of the CDRs."""
    sup = await supervisor(server)
    await ready_agent(server, 1)
    agent_channel = await answered_queue_call(server, "420777123456")
    link = server.get_pbx_link()
    resyncs = link.resyncs
    server.get_ami_client().protocol.transport.abortConnection()
    sim(server).originate("SIP/1004", application="ChanSpy", data=f"{agent_channel.name},qE", action_id="script-2")
    sim(server).phone("SIP/1004").answer()
    await until(lambda: any(j.mode == "listen" for j in sim(server).spies_of(agent_channel)), 10)
    await until(lambda: link.resyncs > resyncs, 15)  # reconnected: the model rebuilt from the lists
    tracker = server.get_call_tracker()
    await until(lambda: any(c.monitoring for c in tracker.calls_of_device("SIP/1004")), 10)
    [spying] = tracker.calls_of_device("SIP/1004")
    assert spying.monitoring is not None and spying.monitoring["mode"] == "listen"
    assert spying.monitoring["channel"] == agent_channel.name
    customer_hangs_up(server)
    await until(lambda: not tracker.active_calls(), 10)
    [cdr] = await cdrs(server)
    assert cdr["caller_number"] == "420777123456"
    assert await cdrs(server, devices=["SIP/1004"]) == []
    sup.close()


@pytest_twisted.ensureDeferred
async def test_a_monitoring_asterisk_could_not_ring_leaves_the_supervisors_next_call_a_call(server: UCSServer) -> None:
    """The supervisor's phone was unreachable: Asterisk's ``OriginateResponse`` says the
    monitoring failed, and the call the supervisor makes next is an ordinary call, CDR and all."""
    sup = await supervisor(server)
    await ready_agent(server, 1)
    a2 = await ready_agent(server, 2)
    await sup.call("agents.changeStatus", [user_id(server, 2), "AUX", "Meeting"])
    await answered_queue_call(server, "420777123456")
    line = sim(server).line("SIP/1004")
    address, line.ip = line.ip, None  # the phone is unreachable (a static peer that stopped answering)
    await sup.call("supervisor.monitor", [user_id(server, 1), "listen"])  # queued, then refused
    tracker = server.get_call_tracker()
    await until(lambda: "SIP/1004" not in tracker.spies.expected)
    assert not tracker.calls_of_device("SIP/1004")
    line.ip = address
    sim(server).phone("SIP/1004").dial("1002")
    await until(lambda: sim(server).phone("SIP/1002").ringing)
    sim(server).phone("SIP/1002").answer()
    await until(lambda: any(c.connected for c in tracker.calls_of_device("SIP/1004")))
    assert all(c.monitoring is None for c in tracker.calls_of_device("SIP/1004"))
    sim(server).phone("SIP/1004").hangup()
    customer_hangs_up(server)
    await until(lambda: not tracker.active_calls(), 10)
    [mine] = await cdrs(server, devices=["SIP/1004"])  # in the supervisor's recent calls
    assert (mine["direction"], mine["answered_by"]) == ("INTERNAL", "SIP/1002")
    assert mine["data"]["monitoring"] is None
    for c in (sup, a2):
        c.close()
