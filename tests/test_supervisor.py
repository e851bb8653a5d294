"""Issue 17: a supervisor over real WebSockets against the whole UCS on the simulated
PBX (over AMI TCP): working without taking calls, the team view and its pushes,
changing an agent's status, monitoring (ChanSpy on the supervisor's phone), logging
an agent out, refusals outside the scope, the wallboard's figures and the export."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import until
from test_web_api import CallError, Client, connect, ready_agent, start, user_id, ws_url
from twisted.internet import defer
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from ucs import demo
from ucs.server import UCSServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[UCSServer]:
    srv = pytest_twisted.blockon(defer.ensureDeferred(start(tmp_path)))
    yield srv
    pytest_twisted.blockon(srv.service.stopService())


def sim(server: UCSServer) -> Any:
    return server.get_demo_pbx().sim


def members_of(server: UCSServer, device: str) -> set[str]:
    return {q.name for q in sim(server).queues.values() if any(m.interface == device for m in q.members.values())}


async def supervisor(server: UCSServer, phone: int | None = 4) -> Client:
    c = await connect(ws_url(server))
    await c.call("login", ["supervisor", "supervisor-demo"])
    if phone is not None:
        await c.call("identifier", [demo.line_of(phone)[1]])
    state = await c.call("supervisor.start")
    assert state["status"] == "OFFLINE"
    return c


async def pushed(c: Client, name: str, test: Any, timeout: float = 5.0) -> dict[str, Any]:
    """The first ``name`` push whose data passes ``test`` (earlier ones are dropped)."""
    found: list[dict[str, Any]] = []

    def take() -> bool:
        for msg in [m for m in c.inbox if m.get("event") == name]:
            c.inbox.remove(msg)  # pushes of other names stay for later
            if test(msg["data"]):
                found.append(msg["data"])
                return True
        return False

    await until(take, timeout)
    return found[0]


@pytest_twisted.ensureDeferred
async def test_team_view_monitor_status_logout_and_the_wallboard(server: UCSServer) -> None:
    seen: list[dict[str, str]] = []
    link = server.get_pbx_link()
    original = link.eventReceived

    def record(message: Any) -> None:  # what UCS reads from the simulator over AMI
        if message.get("Event") in ("ChanSpyStart", "ChanSpyStop", "Hangup"):
            seen.append(dict(message))
        original(message)

    link.eventReceived = record  # type: ignore[method-assign]
    sup = await supervisor(server)
    # Working as a supervisor puts their phone in no queue.
    assert members_of(server, "SIP/1004") == set()
    a1 = await ready_agent(server, 1)
    uid1 = user_id(server, 1)
    assert "SIP/1001" in {m for q in sim(server).queues.values() for m in q.members}

    team = await sup.call("supervisor.team")
    row = {r["id"]: r for r in team}[uid1]
    assert (row["status"], row["logged_in"], row["device"], row["call"]) == ("READY", True, "SIP/1001", None)
    assert {r["username"] for r in team} >= {"agent1", "agent2", "agent3", "agent4"}
    board = await sup.call("wallboard.subscribe")
    support = {q["asterisk_name"]: q for q in board["queues"]}["support"]
    assert (support["answered"], support["ready"], support["waiting"]) == (0, 1, 0)

    # A customer calls the support queue; agent 1's phone answers it.
    sim(server).caller_calls("5000", "420777123456", "Jana Novak")
    await until(lambda: any(c.name.startswith("SIP/1001-") for c in sim(server).channels.values()))
    sim(server).phone("SIP/1001").answer()
    row = await pushed(sup, "team.agent", lambda d: d["id"] == uid1 and d["call"] and d["call"]["state"] == 3)
    assert row["call"]["number"] == "420777123456" and row["call"]["queue"] == "support"
    assert row["call"]["direction"] == "INCOMING" and row["call"]["held"] is False
    wb = await pushed(sup, "wallboard", lambda d: d["queues"][0]["on_call"] == 1 or
                      {q["asterisk_name"]: q for q in d["queues"]}["support"]["on_call"] == 1)
    assert wb

    # Whisper: the supervisor's phone is rung into ChanSpy on the agent's channel.
    result = await sup.call("supervisor.monitor", [uid1, "whisper"])
    assert result["options"] == "qwE" and result["channel"].startswith("SIP/1001-")
    agent_channel = sim(server).find_channel(result["channel"])
    await until(lambda: any(c.name.startswith("SIP/1004-") for c in sim(server).channels.values()))
    sim(server).phone("SIP/1004").answer()  # the supervisor picks up
    await until(lambda: any(j.mode == "whisper" for j in sim(server).spies_of(agent_channel)), 10)
    spy = [c for c in sim(server).channels.values() if c.name.startswith("SIP/1004-")]
    assert len(spy) == 1 and spy[0].app == "ChanSpy" and spy[0].state == 6
    # The model UCS keeps of Asterisk sees the supervisor's channel up; the team view says who listens.
    await until(lambda: any(ch.name.startswith("SIP/1004-") for ch in server.get_pbx().channels.values()))
    row = await pushed(sup, "team.agent", lambda d: d["id"] == uid1 and d["monitored"])
    assert row["monitored"] == [{"device": "SIP/1004", "channel": spy[0].name, "by": "supervisor", "mode": "whisper"}]
    assert row["call"]["state"] == 3  # the agent's call is unchanged

    # An agent may not monitor; a status change needs a reason for AUX.
    with pytest.raises(CallError) as e:
        await a1.call("supervisor.monitor", [uid1, "listen"])
    assert e.value.error["error"] == "permission_denied"
    with pytest.raises(CallError) as e:
        await sup.call("supervisor.monitor", [uid1, "shout"])
    assert "listen, whisper or barge" in e.value.error["message"]

    # The agent's call ends: ChanSpy stops and the supervisor's phone hangs up (option E).
    for ch in [c for c in sim(server).channels.values() if c.name.startswith("SIP/carrier")]:
        sim(server).hangup_channel(ch)
    await until(lambda: not any(c.name.startswith("SIP/1004-") for c in sim(server).channels.values()), 10)
    await until(lambda: sum(m["Event"] == "Hangup" for m in seen) >= 3)
    # In Asterisk 20's order (tests/lab/test_supervisor_lab.py): the spy stops before the agent's
    # channel hangs up, then the supervisor's (cause 16).
    order = [(m["Event"], (m.get("Channel") or m.get("SpyerChannel", ""))[:8]) for m in seen
             if m["Event"] != "Hangup" or m["Channel"].startswith(("SIP/1001", "SIP/1004"))]
    assert order == [("ChanSpyStart", "SIP/1004"), ("ChanSpyStop", "SIP/1004"), ("Hangup", "SIP/1001"),
                     ("Hangup", "SIP/1004")]
    start = next(m for m in seen if m["Event"] == "ChanSpyStart")
    assert start["SpyeeChannel"] == result["channel"] and start["SpyerChannelState"] == "6"
    link.eventReceived = original  # type: ignore[method-assign]
    wb = await pushed(sup, "wallboard", lambda d: {q["asterisk_name"]: q for q in d["queues"]}["support"]["answered"] == 1)
    support = {q["asterisk_name"]: q for q in wb["queues"]}["support"]
    assert support["service_level"] == 100.0 and support["abandoned"] == 0
    row = await pushed(sup, "team.agent", lambda d: d["id"] == uid1 and d["call"] is None)
    assert row["monitored"] == []

    # Status with a reason, then a logout, by the supervisor: the agent's bar is told.
    changed = await sup.call("agents.changeStatus", [uid1, "AUX", "Meeting"])
    assert (changed["status"], changed["reason"]) == ("AUX", "Meeting")
    row = await pushed(sup, "team.agent", lambda d: d["id"] == uid1 and d["status"] == "AUX")
    assert row["reason"] == "Meeting" and row["in_status"] <= 1
    assert (await pushed(a1, "agent.status", lambda d: d["status"] == "AUX"))["reason"] == "Meeting"
    out = await sup.call("agents.logout", [uid1])
    assert out["logged_in"] is False
    assert (await pushed(a1, "agent.logout", lambda d: True))["reason"] == "logged out by supervisor"
    await until(lambda: members_of(server, "SIP/1001") == set())
    row = await pushed(sup, "team.agent", lambda d: d["id"] == uid1 and not d["logged_in"])

    # Today's figures through the API, as CSV too.
    today = datetime.date.fromtimestamp(server.get_reactor().seconds()).isoformat()
    exported = await sup.call("stats.export", ["queue", today, today, "day"])
    support_row = [r for r in exported["rows"] if r["queue"] == "support"][0]
    assert (support_row["offered"], support_row["answered"], support_row["answered_in_sl"]) == (1, 1, 1)
    assert exported["csv"].startswith("day,interval,queue,name,offered,answered,abandoned")
    agents_rows = (await sup.call("stats.export", ["agent", today, today, "15"]))["rows"]
    mine = [r for r in agents_rows if r["agent"] == str(uid1)]
    assert sum(r["answered"] for r in mine) == 1 and sum(r["talktime"] for r in mine) >= 0
    assert all(r["interval"][-2:] in ("00", "15", "30", "45") for r in mine)
    for c in (sup, a1):
        c.close()


@pytest_twisted.ensureDeferred
async def test_scope_refusals_and_a_supervisor_without_a_phone(server: UCSServer) -> None:
    directory = server.get_directory()
    queues = {q.asterisk_name: q for q in directory.queues.values()}
    # A team lead of "sales" only; agent 3 works in "support" only.
    await directory.add("users", {"username": "lead", "password": "lead-password-1", "firstname": "Lea",
                                  "lastname": "Lead", "queues": {str(queues["sales"].id): {"supervisor": True}}})
    agent3 = directory.user_by_username("agent3")
    assert agent3 is not None
    await directory.edit("users", agent3.id, {"queues": {str(queues["support"].id): {"priorities": 0}}})
    a3 = await ready_agent(server, 3)
    lead = await connect(ws_url(server))
    await lead.call("login", ["lead", "lead-password-1"])
    await lead.call("supervisor.start")  # no phone at all
    team = await lead.call("supervisor.team")
    assert agent3.id not in {r["id"] for r in team} and team  # agents 1, 2, 4 share sales
    for method, args in (("agents.changeStatus", [agent3.id, "AUX", "Meeting"]), ("agents.logout", [agent3.id]),
                         ("supervisor.monitor", [agent3.id, "listen"])):
        with pytest.raises(CallError) as e:
            await lead.call(method, args)
        assert e.value.error["error"] == "permission_denied"
        assert "(agent3) is in no queue or team you supervise" in e.value.error["message"]
    # In scope, but no phone to ring: monitoring says so.
    a1 = await ready_agent(server, 1)
    with pytest.raises(CallError) as e:
        await lead.call("supervisor.monitor", [user_id(server, 1), "listen"])
    assert "pair one first" in e.value.error["message"]
    board = await lead.call("wallboard.subscribe")
    assert [q["asterisk_name"] for q in board["queues"]] == ["sales"]
    # The export shows only the lead's queues.
    today = datetime.date.fromtimestamp(server.get_reactor().seconds()).isoformat()
    rows = (await lead.call("stats.export", ["agent", today, today, "60"]))["rows"]
    assert str(agent3.id) not in {r["agent"] for r in rows}
    # An agent gets no wallboard without the token.
    with pytest.raises(CallError) as e:
        await a3.call("wallboard.subscribe")
    assert e.value.error["error"] == "permission_denied"
    for c in (lead, a1, a3):
        c.close()


@pytest_twisted.ensureDeferred
async def test_stats_csv_over_http_needs_a_supervisor(server: UCSServer) -> None:
    import base64

    from twisted.internet import reactor

    base = server.get_web_service().url.rstrip("/")
    today = datetime.date.fromtimestamp(server.get_reactor().seconds()).isoformat()
    url = f"{base}/stats.csv?kind=queue&from={today}&to={today}&interval=30".encode()

    async def get(auth: str | None) -> tuple[int, bytes, Any]:
        headers = Headers({b"authorization": [b"Basic " + base64.b64encode(auth.encode())]} if auth else {})
        response = await Agent(reactor).request(b"GET", url, headers)
        return response.code, await readBody(response), response.headers

    code, body, headers = await get(None)
    assert code == 401 and headers.getRawHeaders(b"www-authenticate")
    code, body, _ = await get("supervisor:wrong")
    assert code == 401
    code, body, _ = await get(":".join(demo.user_of(1)))  # an agent
    assert code == 403 and b"supervisor" in body
    code, body, headers = await get("supervisor:supervisor-demo")
    assert code == 200, body
    assert headers.getRawHeaders(b"content-type") == [b"text/csv; charset=utf-8"]
    assert body.startswith(b"day,interval,queue,name,offered,answered,abandoned,answered_in_sl,talktime,waittime")
    url = f"{base}/stats.csv?kind=queue&from=yesterday&to={today}".encode()
    code, body, _ = await get("supervisor:supervisor-demo")
    assert code == 400 and b"YYYY-MM-DD" in body


@pytest_twisted.ensureDeferred
async def test_a_wall_screen_with_the_token_sees_every_queue_live(tmp_path: Path) -> None:
    from serverkit import start_demo

    server = await start_demo(tmp_path, supervisor={"wallboard_token": "wall-secret-1234"})
    try:
        screen = await connect(ws_url(server))
        with pytest.raises(CallError) as e:
            await screen.call("wallboard.subscribe")
        assert e.value.error["error"] == "permission_denied" and "token" in e.value.error["message"]
        with pytest.raises(CallError) as e:
            await screen.call("wallboard.subscribe", ["wall-secret-0000"])
        assert "not the configured" in e.value.error["message"]
        board = await screen.call("wallboard.subscribe", ["wall-secret-1234"])
        assert {q["asterisk_name"] for q in board["queues"]} == {q.asterisk_name for q in server.get_directory().queues.values()}
        # Nothing else opens with it: the screen is not logged in.
        with pytest.raises(CallError):
            await screen.call("supervisor.team")
        sim(server).caller_calls("5000", "420777123456", "Jana Novak")
        wb = await pushed(screen, "wallboard", lambda d: any(q["waiting"] == 1 for q in d["queues"]))
        support = next(q for q in wb["queues"] if q["asterisk_name"] == "support")
        assert support["longest_since"] is not None and support["waiting"] == 1
        for ch in [c for c in sim(server).channels.values() if c.name.startswith("SIP/carrier")]:
            sim(server).hangup_channel(ch)  # the caller gives up
        wb = await pushed(screen, "wallboard", lambda d: any(q["abandoned"] == 1 for q in d["queues"]))
        support = next(q for q in wb["queues"] if q["asterisk_name"] == "support")
        assert (support["waiting"], support["answered"], support["service_level"]) == (0, 0, 0.0)
        screen.close()
    finally:
        await server.service.stopService()
