"""The Interaction Processor (seed 003) over a real WebSocket against the demo container.

The client below is written from the seed's messages alone: it sends
``{"command", "data"}`` and reads replies (``"command"`` + ``"result"``) and
events (``"name"``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest_twisted
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from test_web_api import until
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint

from ucs.config import Config
from ucs.server import UCSServer

TIMEOUT = 10.0


class Client(WebSocketClientProtocol):
    """A seed-003 client: every message is kept; ``reply``/``event`` wait for one."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.seen = 0
        self._waiters: list[tuple[Any, Deferred[dict[str, Any]]]] = []
        self.opened: Deferred[None] = Deferred()
        self.closed: Deferred[None] = Deferred()
        self.pings = 0  # the server's heartbeat pings received (and answered)

    def onOpen(self) -> None:
        self.opened.callback(None)

    def onPing(self, payload: bytes) -> None:
        self.pings += 1
        super().onPing(payload)  # answers it

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        msg = json.loads(payload.decode("utf-8"))
        self.messages.append(msg)
        for w in list(self._waiters):
            match, d = w
            if match(msg):
                msg["_taken"] = True
                self._waiters.remove(w)
                d.callback(msg)
                return

    def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
        if not self.closed.called:
            self.closed.callback(None)

    def raw(self, text: str | bytes, binary: bool = False) -> None:
        self.sendMessage(text.encode() if isinstance(text, str) else text, binary)

    def wait(self, match: Any) -> Deferred[dict[str, Any]]:
        for msg in self.messages:
            if match(msg) and not msg.get("_taken"):
                msg["_taken"] = True
                d: Deferred[dict[str, Any]] = Deferred()
                d.callback(msg)
                return d
        d = Deferred()
        self._waiters.append((match, d))
        return d.addTimeout(TIMEOUT, reactor)

    def reply(self, command: Any) -> Deferred[dict[str, Any]]:
        return self.wait(lambda m: "result" in m and m.get("command") == command)

    def event(self, name: str, where: Any = lambda m: True) -> Deferred[dict[str, Any]]:
        return self.wait(lambda m: m.get("name") == name and where(m))

    async def request(self, command: str, data: Any = None, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"command": command, **extra}
        if data is not None:
            body["data"] = data
        self.raw(json.dumps(body))
        return await self.reply(command)


async def started(tmp_path: Path, **web: Any) -> tuple[UCSServer, Any]:
    cfg = Config().replace(
        demo={"enabled": True, "call_rate": 0},
        store={"url": f"sqlite:///{tmp_path / 'ucs.db'}"},
        web={"port": 0, **web},
        plugins={"directory": str(tmp_path / "plugins")},
        iserver={"instance_domain": "cc.example.com"},
        agents={"initial_status": "ready"},
    )
    server = UCSServer(cfg, reactor)
    ix = server.get_iserver()
    server.service.startService()
    await server.service.whenStarted()
    if not server.get_pbx_link().resyncs:
        await server.get_pbx_link().whenSynced()
    return server, ix


async def connect(server: UCSServer) -> Client:
    web = server.get_web_service()
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{web.port}/iserver")
    factory.protocol = Client
    proto: Client = await TCP4ClientEndpoint(reactor, "127.0.0.1", web.port).connect(factory)
    await proto.opened
    return proto


async def prepare(c: Client, agent: str, password: str, override: bool = False, **data: Any) -> dict[str, Any]:
    return await c.request("prepareSession", {"model": "ucs", "override": override,
                                              "agent": {"id": agent, "password": password}, **data})


async def stop(server: UCSServer, *clients: Client) -> None:
    for c in clients:
        c.dropConnection(abort=True)
    await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_service_info_capabilities_prepare_confirm_override(tmp_path: Path) -> None:
    server, _ = await started(tmp_path)
    a = await connect(server)
    b = await connect(server)
    try:
        info = (await a.wait(lambda m: "vendor" in m.get("data", {})))["data"]
        assert info["vendor"] == "UCS" and info["cti-vendor"] == "Asterisk"
        assert info["cti-version"] == server.get_demo_pbx().sim.version
        assert info["instance-domain"] == "cc.example.com" and info["version"]
        again = await a.request("getServiceInformation", {})
        assert again["result"] == "success" and again["data"] == info

        caps = await a.request("getCapabilities", {})
        assert caps["result"] == "success"
        assert "call.answer" in caps["data"]["callControl"] and "ucs" in caps["data"]["models"]
        assert "report.calljourney" in caps["data"]["reports"]
        # seed 003: the UCCX Report Server resource's type, advertised with what it answers
        [res] = caps["data"]["resources"]
        assert res["type"] == "com.openmethods.iserver.processor.reporting.uccx"
        assert "report.teamstatus.begin" in res["reports"] and "report.teamstatus.memberadded" in res["events"]
        assert "call.tribute" in caps["data"]["callControl"]  # hold (docs/iserver.md)

        ok = await prepare(a, "agent1", "demo-pass-1", device="SIP/1001")
        assert ok["result"] == "success" and ok["resource"]["id"]
        assert ok["resource"]["data"]["agent"]["id"] == "agent1"
        assert ok["resource"]["data"]["agent"]["password"] != "demo-pass-1"

        confirm = await prepare(b, "agent1", "demo-pass-1")
        assert confirm["result"] == "confirm" and confirm["message"]
        assert confirm["original"]["command"] == "prepareSession"
        assert confirm["original"]["data"]["agent"]["id"] == "agent1"

        replaced = await prepare(b, "agent1", "demo-pass-1", override=True)
        assert replaced["result"] == "success" and replaced["resource"]["id"] != ok["resource"]["id"]
        closed = await a.event("session.closed")
        assert closed["resource"] == ok["resource"]["id"]

        # b drives the agent: status change through the registry, event back
        changed = await b.request("agent.changeStatus", {"status": "AUX", "reason": "Lunch"})
        assert changed["result"] == "success"
        ev = await b.event("agent.status", lambda m: m["data"]["status"] == "AUX")
        assert ev["data"]["reason"] == "Lunch"
        # a has no session any more
        gone = await a.request("agent.changeStatus", {"status": "READY"})
        assert gone["result"] == "failure" and gone["failure"]["code"] == "no_session"
    finally:
        await stop(server, a, b)


def is_failure(msg: dict[str, Any], code: str) -> bool:
    f = msg.get("failure")
    return (msg.get("result") == "failure" and isinstance(f, dict) and f.get("code") == code
            and isinstance(f.get("message"), str) and f["message"] and "context" in f and "original" in msg)


@pytest_twisted.ensureDeferred
async def test_every_failure_form(tmp_path: Path) -> None:
    server, _ = await started(tmp_path)
    c = await connect(server)
    try:
        c.raw("{not json")
        bad = await c.reply(None)
        assert is_failure(bad, "malformed_json") and bad["original"] == "{not json"
        c.raw("[1, 2]")
        assert is_failure(await c.reply(None), "malformed_request")
        c.raw(json.dumps({"data": {}}))
        nocmd = await c.reply(None)
        assert is_failure(nocmd, "missing_field") and nocmd["failure"]["context"] == "command"
        unknown = await c.request("makeCoffee", {})
        assert is_failure(unknown, "unknown_command") and unknown["original"]["command"] == "makeCoffee"

        nodata = await c.request("prepareSession")
        assert is_failure(nodata, "missing_field") and nodata["failure"]["context"] == "data"
        nomodel = await c.request("prepareSession", {"agent": {"id": "agent2", "password": "demo-pass-2"}})
        assert is_failure(nomodel, "missing_field") and nomodel["failure"]["context"] == "data.model"
        wrongmodel = await c.request("prepareSession", {"model": "pigeon", "agent": {"id": "a", "password": "b"}})
        assert is_failure(wrongmodel, "unknown_model")
        nopass = await c.request("prepareSession", {"model": "ucs", "agent": {"id": "agent2"}})
        assert is_failure(nopass, "missing_field") and nopass["failure"]["context"] == "data.agent.password"
        badpass = await c.request("prepareSession", {"model": "ucs", "agent": {"id": "agent2", "password": "nope"}})
        assert is_failure(badpass, "authentication_failed")
        assert badpass["original"]["data"]["agent"]["password"] != "nope"
        assert badpass["original"]["data"]["agent"]["id"] == "agent2"

        nosession = await c.request("report.calljourney", {"CallId": "1.1"})
        assert is_failure(nosession, "no_session")
        assert (await prepare(c, "agent2", "demo-pass-2", device="SIP/1002"))["result"] == "success"
        nocall = await c.request("report.calljourney", {"CallId": "123.456"})
        assert is_failure(nocall, "not_found")
        noid = await c.request("report.calljourney", {})
        assert is_failure(noid, "missing_field") and noid["failure"]["context"] == "data.CallId"
        badstatus = await c.request("agent.changeStatus", {"status": "SLEEPING"})
        assert is_failure(badstatus, "invalid_data")
        notsub = await c.request("report.teamstatus.end", {"agentId": "agent2"})
        assert is_failure(notsub, "not_subscribed")
        other = await c.request("report.teamstatus.begin", {"agentId": "agent3"})
        assert is_failure(other, "permission_denied")
        twice = await prepare(c, "agent2", "demo-pass-2")
        assert is_failure(twice, "session_exists")
    finally:
        await stop(server, c)


@pytest_twisted.ensureDeferred
async def test_queue_call_journey_live_and_ended(tmp_path: Path) -> None:
    server, ix = await started(tmp_path)
    c = await connect(server)
    try:
        assert (await prepare(c, "agent3", "demo-pass-3", device="SIP/1003"))["result"] == "success"
        sim = server.get_demo_pbx().sim
        for device in ("SIP/1001", "SIP/1002", "SIP/1003", "SIP/1004"):
            sim.phone(device).set_behaviour(answer_after=1)
        sim.caller_calls("5000", "420777123456", hangup_after=3)
        ringing = await c.event("call.connect")
        call_id = ringing["data"]["uniqueid"]
        live = await c.request("report.calljourney", {"CallId": call_id})
        assert live["result"] == "success" and live["data"]["CallJourney"]
        await c.event("call.hangup", lambda m: m["data"]["uniqueid"] == call_id)
        ended = await c.request("report.calljourney", {"CallId": call_id})
        steps = ended["data"]["CallJourney"]
        assert {s["DeviceType"] for s in steps} >= {"trunk", "queue", "line"}
        for s in steps:
            assert set(s) == {"CallId", "Device", "DeviceType", "Description", "Duration"}
            assert s["CallId"] == call_id
            assert re.fullmatch(r"\d\d:\d\d:\d\d", s["Duration"]), s  # HH:MM:SS (docs/iserver.md)
        assert any(s["Device"] == "SIP/1003" for s in steps)
        # from the store, as after a restart
        ix._recent.clear()
        await server._flush_cdrs()
        assert await server.get_store().get_cdr(call_id) is not None
        stored = await c.request("report.calljourney", {"CallId": call_id})
        assert stored["result"] == "success" and stored["data"]["CallJourney"] == steps
    finally:
        await stop(server, c)


@pytest_twisted.ensureDeferred
async def put_in_team(server: UCSServer, admin: Any, username: str, queue_id: int, tid: int | None,
                      supervisor: bool = False) -> None:
    """``username``'s membership of ``queue_id`` gets team ``tid`` (through the API, as an admin would)."""
    user = server.get_directory().user_by_username(username)
    assert user is not None
    queues = {str(q): {"priorities": m.priority, "team_id": m.team_id, "supervisor": m.supervisor}
              for q, m in user.queues.items()}
    queues[str(queue_id)] = {"priorities": 0, "team_id": tid, "supervisor": supervisor}
    await server.get_registry().call(admin, "config.users.edit", [{"id": user.id, "queues": queues}])


@pytest_twisted.ensureDeferred
async def test_teamstatus(tmp_path: Path) -> None:
    server, _ = await started(tmp_path)
    c = await connect(server)
    try:
        reg, sessions = server.get_registry(), server.get_sessions()
        admin = sessions.create()
        await reg.call(admin, "login", ["admin", "admin-demo"])
        d = server.get_directory()
        queue_id = next(iter(d.queues))
        team = await reg.call(admin, "config.teams.add", [{"name": "Blue"}])
        team_id = team["id"] if isinstance(team, dict) else team.id

        async def put(username: str, tid: int | None, supervisor: bool = False) -> None:
            await put_in_team(server, admin, username, queue_id, tid, supervisor)

        await put("agent1", team_id)
        await put("agent2", team_id)
        assert (await prepare(c, "agent1", "demo-pass-1", device="SIP/1001"))["result"] == "success"
        begin = await c.request("report.teamstatus.begin", {"agentId": "agent1"})
        assert begin["result"] == "success" and begin["data"] == {}
        added = (await c.event("report.teamstatus.teamadded"))["data"]
        assert added["agentId"] == "agent1" and added["team"]["teamName"] == "Blue"
        assert added["team"]["teamId"] == str(team_id)
        members = {m["memberId"]: m for m in added["team"]["members"]}
        assert set(members) == {"agent1", "agent2"}
        assert members["agent2"]["status"] == "not_ready" and members["agent2"]["memberType"] == "Agent"
        assert members["agent1"]["memberName"]

        # agent2 logs in through its own session and goes AUX with a reason
        other = await connect(server)
        try:
            assert (await prepare(other, "agent2", "demo-pass-2", device="SIP/1002"))["result"] == "success"
            await other.request("agent.changeStatus", {"status": "AUX", "reason": "Break"})
            st = await c.event("report.teamstatus.memberstatuschanged",
                               lambda m: m["data"]["team"]["members"][0]["status"] == "not_ready"
                               and m["data"]["team"]["members"][0]["reasonName"] == "Break")
            assert st["data"]["team"]["members"][0]["memberId"] == "agent2"
            # seed 003's reason is a code: the directory's AUX reason id
            [brk] = [r for r in d.auxreasons.values() if r.name == "Break"]
            assert st["data"]["team"]["members"][0]["reason"] == str(brk.id)
        finally:
            other.dropConnection(abort=True)

        await put("agent3", team_id, supervisor=True)
        ma = (await c.event("report.teamstatus.memberadded"))["data"]["team"]
        # supervisor of this team through its membership, not a supervisor user: the team's lead
        assert ma["members"][0]["memberId"] == "agent3" and ma["members"][0]["memberType"] == "TeamLead"
        await put("agent3", None)
        mr = (await c.event("report.teamstatus.memberremoved"))["data"]["team"]
        assert mr["members"] == [{"memberId": "agent3"}]

        await reg.call(admin, "config.teams.edit", [{"id": team_id, "name": "Green"}])
        tc = (await c.event("report.teamstatus.teamchanged"))["data"]["team"]
        assert tc == {"teamId": str(team_id), "teamName": "Green"}

        team2 = await reg.call(admin, "config.teams.add", [{"name": "Red"}])
        team2_id = team2["id"] if isinstance(team2, dict) else team2.id
        queue2 = [q for q in d.queues if q != queue_id][0]
        user = d.user_by_username("agent1")
        assert user is not None
        queues = {str(q): {"priorities": m.priority, "team_id": m.team_id, "supervisor": m.supervisor}
                  for q, m in user.queues.items()}
        queues[str(queue2)] = {"priorities": 0, "team_id": team2_id}
        await reg.call(admin, "config.users.edit", [{"id": user.id, "queues": queues}])
        ta = (await c.event("report.teamstatus.teamadded", lambda m: m["data"]["team"]["teamName"] == "Red"))
        assert [m["memberId"] for m in ta["data"]["team"]["members"]] == ["agent1"]
        await reg.call(admin, "config.teams.delete", [team2_id])
        tr = (await c.event("report.teamstatus.teamremoved"))["data"]["team"]
        assert tr == {"teamId": str(team2_id), "teamName": "Red"}

        end = await c.request("report.teamstatus.end", {"agentId": "agent1"})
        assert end["result"] == "success"
    finally:
        await stop(server, c)


@pytest_twisted.ensureDeferred
async def test_teamstatus_follows_several_agents_and_ends_the_one_named(tmp_path: Path) -> None:
    """Seed 003's team events each name their agentId: a supervisor's client follows
    several agents on one connection; ``end`` stops only the agent it names."""
    server, _ = await started(tmp_path)
    c = await connect(server)
    agent = await connect(server)
    try:
        reg, sessions = server.get_registry(), server.get_sessions()
        admin = sessions.create()
        await reg.call(admin, "login", ["admin", "admin-demo"])
        d = server.get_directory()
        q1, q2 = sorted(d.queues)[:2]
        blue = (await reg.call(admin, "config.teams.add", [{"name": "Blue"}]))["id"]
        red = (await reg.call(admin, "config.teams.add", [{"name": "Red"}]))["id"]
        await put_in_team(server, admin, "agent1", q1, blue)
        await put_in_team(server, admin, "agent2", q2, red)
        await put_in_team(server, admin, "supervisor", q1, blue, supervisor=True)
        assert (await prepare(c, "supervisor", "supervisor-demo"))["result"] == "success"

        for agent_id, team in (("agent1", "Blue"), ("agent2", "Red")):
            assert (await c.request("report.teamstatus.begin", {"agentId": agent_id}))["result"] == "success"
            added = (await c.event("report.teamstatus.teamadded", lambda m, a=agent_id: m["data"]["agentId"] == a))
            assert added["data"]["team"]["teamName"] == team
        members = {m["memberId"]: m for m in added["data"]["team"]["members"]}
        assert set(members) == {"agent2"}
        blue_members = {m["memberId"]: m["memberType"] for m in c.messages
                        if m.get("name") == "report.teamstatus.teamadded" and m["data"]["agentId"] == "agent1"
                        for m in m["data"]["team"]["members"]}
        assert blue_members == {"agent1": "Agent", "supervisor": "Supervisor"}

        # both followed: agent2's change reaches the client for agent2's report
        assert (await prepare(agent, "agent2", "demo-pass-2", device="SIP/1002"))["result"] == "success"
        await agent.request("agent.changeStatus", {"status": "AUX", "reason": "Lunch"})
        await c.event("report.teamstatus.memberstatuschanged",
                      lambda m: m["data"]["agentId"] == "agent2" and m["data"]["team"]["members"][0]["reasonName"] == "Lunch")

        # end names agent2: agent1 is still followed, agent2 no longer
        assert (await c.request("report.teamstatus.end", {"agentId": "agent2"}))["result"] == "success"
        again = await c.request("report.teamstatus.end", {"agentId": "agent2"})
        assert again["result"] == "failure" and again["failure"]["code"] == "not_subscribed"
        assert again["failure"]["context"] == "data.agentId"
        await reg.call(admin, "config.teams.edit", [{"id": red, "name": "Crimson"}])
        await reg.call(admin, "config.teams.edit", [{"id": blue, "name": "Navy"}])
        changed = await c.event("report.teamstatus.teamchanged")
        assert changed["data"] == {"agentId": "agent1", "team": {"teamId": str(blue), "teamName": "Navy"}}
        assert not [m for m in c.messages if m.get("name", "").startswith("report.teamstatus.")
                    and m["data"]["agentId"] == "agent2" and m["data"]["team"].get("teamName") == "Crimson"]
        assert (await c.request("report.teamstatus.end", {"agentId": "agent1"}))["result"] == "success"
    finally:
        await stop(server, c, agent)


@pytest_twisted.ensureDeferred
async def test_a_client_that_stops_answering_is_dropped_and_a_quiet_one_kept(tmp_path: Path) -> None:
    """The agent bar's heartbeat watches these sockets too (``[web] ping_interval``)."""
    server, ix = await started(tmp_path, ping_interval=1.0, ping_timeout=1.0)
    quiet = await connect(server)  # sends nothing, but its WebSocket answers pings
    dead = await connect(server)
    try:
        await until(lambda: len(ix.controllers) == 2)
        assert dead.transport is not None
        dead.transport.pauseProducing()  # stops reading: no pongs
        await until(lambda: len(ix.controllers) == 1, timeout=5)
        dead.transport.resumeProducing()
        await dead.closed
        # Two more pings answered: the second comes after the heartbeat looked for the
        # first one's answer (timeout = interval), so the quiet one stays.
        pings = quiet.pings
        await until(lambda: quiet.pings >= pings + 2, timeout=5)
        assert len(ix.controllers) == 1
        assert (await quiet.request("getCapabilities", {}))["result"]
    finally:
        await stop(server, quiet)
