"""Issue 14, points 5 and 10 and the low one: who may act on what, attacked over real sockets.

The demo server with five phones; the directory is arranged (in the process,
before anyone logs in) so that scopes differ:

* agent1, agent2: Support and Sales (the demo's default);
* agent3: Support only;
* agent4: Support only, in team Red;
* agent5: supervisor of Sales (its membership's flag, not the user's), in team
  Red there: it supervises agent1 and agent2 (Sales) and agent4 (team Red),
  not agent3.

Agents attack on the agent bar's WebSocket (``/ws``) and on the Interaction
Processor (``/iserver``); every refusal is ``permission_denied`` (403) saying
what was refused and why, and nothing changed.  Before the fix each of these
calls succeeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_twisted
from serverkit import start_demo, working_agent
from test_iserver import Client as IPClient
from test_iserver import connect as ip_connect
from test_iserver import is_failure, prepare
from test_web_api import CallError, Client, connect, until, ws_url

from ucs import demo
from ucs.api.session import Session
from ucs.calls.call import Call
from ucs.constants import AgentStatus
from ucs.server import UCSServer

#: An outside number the demo's trunk answers.
CUSTOMER = "0420777987654"


@attrs.define
class World:
    server: UCSServer
    ids: dict[str, int]
    bars: dict[str, Client] = attrs.Factory(dict)
    ips: dict[str, IPClient] = attrs.Factory(dict)
    others: list[Session] = attrs.Factory(list)

    def user(self, name: str) -> Any:
        return self.server.get_directory().users[self.ids[name]]

    def status(self, name: str) -> str:
        agent = self.server.get_agents().get(self.ids[name])
        assert agent is not None
        return str(agent.status.name)

    async def stop(self) -> None:
        for bar in self.bars.values():
            bar.close()
        for ip in self.ips.values():
            ip.dropConnection(abort=True)
        await self.server.service.stopService()


async def world(tmp_path: Path) -> World:
    server = await start_demo(tmp_path, demo={"phones": 5})
    d = server.get_directory()
    support = d.queue_by_asterisk_name("support").id
    sales = d.queue_by_asterisk_name("sales").id
    red = (await d.add("teams", {"name": "Red"})).id
    ids = {f"agent{i}": d.user_by_username(f"agent{i}").id for i in range(1, 6)}  # type: ignore[union-attr]
    await d.edit("users", ids["agent3"], {"queues": {str(support): {}}})
    await d.edit("users", ids["agent4"], {"queues": {str(support): {"team_id": red}}})
    await d.edit("users", ids["agent5"], {"queues": {str(sales): {"supervisor": True, "team_id": red}}})
    return World(server, ids)


async def bar(w: World, i: int) -> Client:
    """Demo agent ``i`` on an agent bar, its phone paired (READY)."""
    c = await connect(ws_url(w.server))
    await c.call("login", list(demo.user_of(i)))
    await c.call("identifier", [demo.line_of(i)[1]])
    await c.call("provision")
    w.bars[f"agent{i}"] = c
    return c


async def ip(w: World, i: int, device: bool = True) -> IPClient:
    """Demo agent ``i`` on the Interaction Processor (with its phone, or none)."""
    c = await ip_connect(w.server)
    extra = {"device": demo.line_of(i)[0]} if device else {}
    ok = await prepare(c, *demo.user_of(i), **extra)
    assert ok["result"] == "success", ok
    w.ips[f"agent{i}"] = c
    return c


async def refused(c: Client, method: str, args: Any, *why: str) -> str:
    with pytest.raises(CallError) as e:
        await c.call(method, args)
    err = e.value.error
    assert (err["error"], err["code"]) == ("permission_denied", 403), (method, err)
    for part in why:
        assert part in err["message"], (method, err["message"])
    return str(err["message"])


async def ip_refused(c: IPClient, command: str, data: Any, *why: str) -> str:
    reply = await c.request(command, data)
    assert is_failure(reply, "permission_denied"), (command, reply)
    for part in why:
        assert part in reply["failure"]["message"], (command, reply["failure"]["message"])
    return str(reply["failure"]["message"])


async def customer_call(w: World, device: str) -> Call:
    """The phone ``device`` calls a customer, who answers: a call only that phone took part in."""
    sim = w.server.get_demo_pbx().sim
    sim.trunk().set_behaviour(answer_after=0.1, hangup_after=None)
    out = sim.phone(device).dial(CUSTOMER)
    assert out is not None
    control = w.server.get_call_control()
    await until(lambda: (c := control.find_call(out.linkedid)) is not None and c.connected is not None)
    call = control.find_call(out.linkedid)
    assert call is not None
    return call  # type: ignore[no-any-return]


async def hang_up_and_store(w: World, call: Call, device: str) -> None:
    """End the call and leave it only in the store, as after a restart."""
    w.server.get_demo_pbx().sim.phone(device).hangup()
    await until(lambda: call.ended)
    await w.server._flush_cdrs()
    assert await w.server.get_store().get_cdr(call.uniqueid) is not None
    w.server.get_call_control().records.recent.clear()
    ix = w.server.get_iserver()
    if ix is not None:
        ix._recent.clear()
    assert w.server.get_call_control().find_call(call.uniqueid) is None


# -- point 5 and the low one: a call's account code, metadata and journey -----------------------------


@pytest_twisted.ensureDeferred
async def test_an_agent_changes_and_reads_only_the_calls_of_their_phone(tmp_path: Path) -> None:
    w = await world(tmp_path)
    try:
        a1, a2 = await bar(w, 1), await bar(w, 2)
        a3 = await ip(w, 3)
        call = await customer_call(w, "SIP/1001")
        uid = call.uniqueid

        # agent 2 (bar) and agent 3 (Interaction Processor) took no part in agent 1's call
        await refused(a2, "call.setAccountCode", [uid, "SALES", None, True],
                      "call.setAccountCode", uid, "not one your phone (SIP/1002) took part in")
        await refused(a2, "cdr.metadata", [uid, {"accountcode": "SUPPORT", "crm": "stolen"}],
                      "cdr.metadata", "SIP/1002")
        await ip_refused(a3, "call.setAccountCode", {"uniqueid": uid, "accountCode": "SALES"},
                         "not one your phone (SIP/1003) took part in")
        await ip_refused(a3, "cdr.metadata", {"uniqueid": uid, "metadata": {"crm": "stolen"}}, "SIP/1003")
        await ip_refused(a3, "report.calljourney", {"CallId": uid},
                         "report.calljourney", "not one your phone (SIP/1003) took part in")
        assert call.account_code == "" and "crm" not in call.data

        # agent 1 may; a code in the metadata must be a call reason like setAccountCode's
        assert (await a1.call("call.setAccountCode", [uid, "SALES", "NEW", False]))["account_code"] == "SALES/NEW"
        with pytest.raises(CallError) as e:
            await a1.call("cdr.metadata", [uid, {"accountcode": "FREE-BEER"}])
        assert e.value.error["error"] == "invalid_data" and "'FREE-BEER' is not a call reason" in e.value.error["message"]
        assert call.account_code == "SALES/NEW"
        meta = await a1.call("cdr.metadata", [uid, {"accountcode": "SUPPORT/BUG|SALES", "crm": "T-1"}])
        assert meta["metadata"]["crm"] == "T-1" and call.account_code == "SUPPORT/BUG|SALES"

        # ended and only in the store: the same answers, from the CDR's legs
        await hang_up_and_store(w, call, "SIP/1001")
        await refused(a2, "call.setAccountCode", [uid, "SALES", None, True], "SIP/1002")
        await refused(a2, "cdr.metadata", [uid, {"crm": "stolen"}], "SIP/1002")
        await ip_refused(a3, "report.calljourney", {"CallId": uid}, "SIP/1003")
        stored = await w.server.get_store().get_cdr(uid)
        assert stored is not None and stored["account_code"] == "SUPPORT/BUG|SALES"
        assert stored["metadata"]["crm"] == "T-1"
        assert (await a1.call("call.setAccountCode", [uid, "SUPPORT", None, True]))["account_code"] == "SUPPORT"
        # agent 3's own call's journey it may read; an unknown call is still not_found
        own = await customer_call(w, "SIP/1003")
        journey = await a3.request("report.calljourney", {"CallId": own.uniqueid})
        assert journey["result"] == "success" and journey["data"]["CallJourney"]
        assert is_failure(await a3.request("report.calljourney", {"CallId": "123.456"}), "not_found")
    finally:
        await w.stop()


@pytest_twisted.ensureDeferred
async def test_a_supervisor_changes_the_calls_of_their_agents_only(tmp_path: Path) -> None:
    w = await world(tmp_path)
    try:
        sup = await bar(w, 5)
        await bar(w, 1)
        w.others.append(await working_agent(w.server, 3))
        mine = await customer_call(w, "SIP/1001")     # agent 1: Sales, supervised
        theirs = await customer_call(w, "SIP/1003")   # agent 3: Support only, not supervised
        ok = await sup.call("call.setAccountCode", [mine.uniqueid, "SALES", None, True])
        assert ok["account_code"] == "SALES"
        await refused(sup, "call.setAccountCode", [theirs.uniqueid, "SALES", None, True],
                      theirs.uniqueid, "nor one of a queue or an agent you supervise")
        await refused(sup, "cdr.metadata", [theirs.uniqueid, {"crm": "x"}], "you supervise")
        assert theirs.account_code == "" and "crm" not in theirs.data
    finally:
        await w.stop()


# -- point 10: a supervisor of one queue is not a supervisor everywhere ----------------------------------


@pytest_twisted.ensureDeferred
async def test_a_supervisor_acts_on_the_agents_of_their_queues_and_teams(tmp_path: Path) -> None:
    w = await world(tmp_path)
    try:
        for i in (1, 3, 4):
            w.others.append(await working_agent(w.server, i))
        sup = await bar(w, 5)
        sup_ip = await ip(w, 5, device=False)  # no phone needed for these
        shared = w.server.get_shared()
        before = shared.get("agent_emails")

        # agent 3 shares no queue or team agent 5 supervises
        for args in ([w.ids["agent3"], "AUX", "Lunch"], {"user_id": w.ids["agent3"], "status": "OFFLINE"}):
            await refused(sup, "agents.changeStatus", args,
                          "agents.changeStatus", "(agent3) is in no queue or team you supervise")
            await ip_refused(sup_ip, "agents.changeStatus", args, "(agent3) is in no queue or team you supervise")
        assert w.status("agent3") == "READY"
        await refused(sup, "config.users.get", [w.ids["agent3"]], "(agent3)")
        await ip_refused(sup_ip, "config.users.get", {"id": w.ids["agent3"]}, "(agent3)")
        await ip_refused(sup_ip, "report.teamstatus.begin", {"agentId": "agent3"}, "(agent3)")
        # shared data is the whole centre's: superusers only
        await refused(sup, "shared.set", ["agent_emails", {"agent3": 99}], "needs the superuser role")
        await ip_refused(sup_ip, "shared.set", {"identifier": "agent_emails", "data": {"agent3": 99}},
                         "needs the superuser role")
        assert shared.get("agent_emails") == before

        # lists leave out whom it does not supervise (the admin included)
        for listed in (await sup.call("config.users.list"),
                       (await sup_ip.request("config.users.list"))["data"]):
            names = {u["username"] for u in listed}
            assert {"agent1", "agent2", "agent4", "agent5"} <= names
            assert not names & {"agent3", "admin"}
        assert {a["username"] for a in await sup.call("agents.list")} == {"agent1", "agent4", "agent5"}
        state_agents = {a["id"] for a in (await sup.call("state"))["agents"]}
        assert {w.ids["agent1"], w.ids["agent4"]} <= state_agents and w.ids["agent3"] not in state_agents

        # whom it supervises: agent 1 through Sales, agent 4 through team Red; of the three status
        # changes (agent 3 goes AUX on its own in between) its bar is told of those two only
        def told(who: str) -> list[int] | None:
            ids = [m["data"]["id"] for m in sup.inbox if m["event"] == "agents.change"]
            return ids if w.ids[who] in ids else None

        await sup.call("agents.changeStatus", [w.ids["agent1"], "AUX", "Lunch"])
        assert w.status("agent1") == "AUX"
        await sup.wait(lambda: told("agent1"))
        await w.server.get_agents().change_status(w.ids["agent3"], AgentStatus.AUX, "Lunch")
        reply = await sup_ip.request("agents.changeStatus", {"user_id": w.ids["agent4"], "status": "AUX",
                                                             "reason": "Meeting"})
        assert reply["result"] == "success" and w.status("agent4") == "AUX"
        assert w.ids["agent3"] not in await sup.wait(lambda: told("agent4"))
        assert (await sup.call("config.users.get", [w.ids["agent4"]]))["username"] == "agent4"
        assert (await sup_ip.request("report.teamstatus.begin", {"agentId": "agent4"}))["result"] == "success"

        # agents still get no supervisor method at all
        a2 = await bar(w, 2)
        await refused(a2, "agents.changeStatus", [w.ids["agent1"], "READY"], "needs the supervisor role")
        await refused(a2, "config.users.list", None, "needs the supervisor role")
    finally:
        await w.stop()
