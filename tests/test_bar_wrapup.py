"""Issue 16, the agent bar's wrap-up control, recent calls and per-queue figures, over
the real server: the WebSocket API, the store on SQLite, the simulated PBX over AMI TCP,
on a ``Clock`` the test moves (never sleeping).  The same in Chromium is in
tests/test_bar_wrapup_browser.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from test_agents_wrapup import Whole, whole_server
from test_web_api import CallError, Client, ready_agent

from ucs.constants import AgentStatus

READY, ACW = AgentStatus.READY, AgentStatus.ACW


async def refused(bar: Client, method: str, args: Any = None) -> dict[str, Any]:
    with pytest.raises(CallError) as e:
        await bar.call(method, args)
    return e.value.error


async def talked_on_queue_call(w: Whole, bar: Client, *, talk: float = 10) -> str:
    """A customer calls queue support (5000); agent 1 answers and the customer hangs up
    after ``talk`` seconds: the agent is in ACW.  Returns the call's uniqueid."""
    agent = w.server.get_agents().all()[0]
    w.sim.phone(agent.device).set_behaviour(answer_after=1)
    w.sim.caller_calls("5000", "420777000001", "Jana Novak", hangup_after=talk)
    await w.advance(talk + 2)
    assert agent.status == ACW
    hangup = await bar.event("call.hangup")
    return str(hangup["data"]["uniqueid"])


async def support_requires_reason(w: Whole, on: bool = True) -> None:
    directory = w.server.get_directory()
    queue = directory.queue_by_asterisk_name("support")
    assert queue is not None
    await directory.edit("queues", queue.id, {"require_reason": on})


# -- wrap-up control -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_agent_extends_wrap_up_by_a_step_up_to_the_maximum_and_ends_it_early(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"acw_seconds": 20, "acw_extend_step": 30, "acw_max_seconds": 60})
    try:
        bar = await ready_agent(w.server, 1)
        agent = w.server.get_agents().all()[0]
        # outside ACW: refused, saying why
        error = await refused(bar, "agent.extendWrapUp")
        assert (error["code"], error["message"]) == (412, "wrap-up can be extended only in ACW; the agent is READY")
        assert (await refused(bar, "agent.endWrapUp"))["message"] == "wrap-up can be ended only in ACW; the agent is READY"

        await talked_on_queue_call(w, bar)
        status = await bar.event("agent.status")
        wrap = status["data"]["wrapup"]
        started = wrap["started"]
        assert status["data"]["status"] == "ACW" and wrap["until"] == started + 20
        assert (wrap["maxUntil"], wrap["step"], wrap["canExtend"]) == (started + 60, 30, True)

        await w.advance(5)
        me = await bar.call("agent.extendWrapUp")
        assert me["wrapup"]["until"] == started + 50  # 20 + 30
        assert (await bar.event("agent.wrapup"))["data"]["wrapup"]["until"] == started + 50
        me = await bar.call("agent.extendWrapUp")
        assert me["wrapup"]["until"] == started + 60 and not me["wrapup"]["canExtend"]  # capped
        error = await refused(bar, "agent.extendWrapUp")
        assert error["code"] == 412 and "already at its longest (60 s from its start)" in error["message"]

        await w.advance(30)  # past the first end: still ACW (extended)
        assert agent.status == ACW
        me = await bar.call("agent.endWrapUp")
        assert me["status"] == "READY" and me["wrapup"] is None
        assert (await bar.event("agent.status"))["data"]["status"] == "READY"
        bar.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_queue_requiring_a_reason_holds_wrap_up_until_the_reason_is_saved(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"acw_seconds": 10})
    try:
        await support_requires_reason(w)
        bar = await ready_agent(w.server, 1)
        agent = w.server.get_agents().all()[0]
        uid = await talked_on_queue_call(w, bar)
        wrap = (await bar.event("agent.status"))["data"]["wrapup"]
        assert wrap["reasonRequired"] and wrap["call"] == uid and not wrap["held"]

        # leaving ACW by the agent: refused, saying what is missing and what is accepted
        for method, args in (("agent.endWrapUp", None), ("agent.changeStatus", ["READY"]),
                             ("agent.changeStatus", ["AUX", "Lunch"])):
            error = await refused(bar, method, args)
            assert error["code"] == 412, error
            assert error["message"] == (f"queue Support requires a call reason before wrap-up ends: save one of: "
                                        f"SALES, SUPPORT for call {uid} (call.setAccountCode), then leave ACW")
        # ACW asked for again (a new period) keeps the call and its requirement
        await bar.call("agent.changeStatus", ["ACW"])
        assert (await refused(bar, "agent.endWrapUp"))["code"] == 412
        # by the timer: held in ACW, the bar told (it shows the picker)
        await w.advance(12)
        assert agent.status == ACW
        held = (await bar.event("agent.wrapup"))["data"]["wrapup"]
        assert held["held"] and "requires a call reason" in held["message"]
        assert (await bar.call("state"))["user"]["wrapup"]["held"]  # also after a reconnect

        # a wrong code is refused by setAccountCode as before; a right one ends the held wrap-up
        await refused(bar, "call.setAccountCode", [uid, "NOPE"])
        assert agent.status == ACW
        await bar.call("call.setAccountCode", [uid, "SUPPORT", "BUG"])
        await w.settle()
        assert agent.status == READY
        stored = await w.server.get_store_proxy().get_cdr(uid)
        assert stored["account_code"] == "SUPPORT/BUG"

        # the next call: reason saved during the wrap-up, the agent may end it at once
        uid2 = await talked_on_queue_call(w, bar)
        await bar.call("call.setAccountCode", [uid2, "SALES"])
        me = await bar.call("agent.endWrapUp")
        assert me["status"] == "READY"

        # a queue without the setting: wrap-up ends by itself with no reason
        await support_requires_reason(w, False)
        await talked_on_queue_call(w, bar)
        await w.advance(11)
        assert agent.status == READY
        bar.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_require_reason_is_a_queue_setting_checked_and_kept(tmp_path: Path) -> None:
    w = await whole_server(tmp_path)
    try:
        admin = await ready_agent(w.server, 1)
        directory = w.server.get_directory()
        queue = directory.queue_by_asterisk_name("support")
        assert queue is not None and queue.to_dict()["require_reason"] is False
        with pytest.raises(Exception, match="true or false"):
            await directory.edit("queues", queue.id, {"require_reason": "yes"})
        await directory.edit("queues", queue.id, {"require_reason": True})
        stored = await w.server.get_store_proxy().kv_get("dir.queues", str(queue.id))
        assert stored["require_reason"] is True  # a field of the queue's JSON document: no schema change
        admin.close()
    finally:
        await w.server.service.stopService()


# -- recent calls ----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_recent_calls_filtered_with_missed_calls_counted_until_seen_and_redial(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"acw_seconds": 0})
    try:
        bar = await ready_agent(w.server, 1)
        agent = w.server.get_agents().get(bar_user_id(w, 1))
        phone = w.sim.phone(agent.device)
        # 1. rang agent 1 and nobody took it: missed, pushed at once with the count
        phone.set_behaviour(answer_after=None)
        w.sim.caller_calls("5000", "420777000001", "Jana Novak", abandon_after=5)
        await w.advance(7)
        missed = await bar.event("agent.missed")
        assert missed["data"]["missed"] == 1
        assert missed["data"]["call"]["number"] == "420777000001" and missed["data"]["call"]["result"] == "missed"
        # 2. answered by agent 1
        phone.set_behaviour(answer_after=1)
        w.sim.caller_calls("5000", "420777000002", "Petr Svoboda", hangup_after=10)
        await w.advance(13)
        # 3. missed again, from another number
        phone.set_behaviour(answer_after=None)
        w.sim.caller_calls("5000", "420602000003", "Eva Dvorak", abandon_after=5)
        await w.advance(7)
        assert (await bar.event("agent.missed"))["data"]["missed"] == 2

        everything = await bar.call("history.list")
        assert [(c["number"], c["result"], c["direction"]) for c in everything["calls"]] == [
            ("420602000003", "missed", "INCOMING"), ("420777000002", "answered", "INCOMING"),
            ("420777000001", "missed", "INCOMING")]
        assert everything["missed"] == 2
        answered = everything["calls"][1]
        assert answered["name"] == "Petr Svoboda" and answered["duration"] == pytest.approx(10, abs=1)
        # filters: answered / missed, direction, text (number or name, any case), limit
        assert [c["number"] for c in (await bar.call("history.list", [{"result": "missed"}]))["calls"]] == [
            "420602000003", "420777000001"]
        assert [c["number"] for c in (await bar.call("history.list", [{"result": "answered"}]))["calls"]] == [
            "420777000002"]
        assert (await bar.call("history.list", [{"direction": "outgoing"}]))["calls"] == []
        assert [c["number"] for c in (await bar.call("history.list", [{"text": "novak"}]))["calls"]] == ["420777000001"]
        assert [c["number"] for c in (await bar.call("history.list", [{"text": "0006"}]))["calls"]] == []
        assert len((await bar.call("history.list", [{"limit": 1}]))["calls"]) == 1
        # refusals say what is wrong and what is accepted
        error = await refused(bar, "history.list", [{"result": "lost"}])
        assert error["code"] == 400 and "'lost' is not accepted; give answered, missed" in error["message"]
        error = await refused(bar, "history.list", [{"direction": "sideways"}])
        assert "give INCOMING, OUTGOING, INTERNAL" in error["message"]
        error = await refused(bar, "history.list", [{"colour": "red"}])
        assert "unknown keys ['colour']; accepted: direction, result, text, limit" in error["message"]

        # viewed: the badge goes, and comes back with the next missed call only
        assert (await bar.call("history.seen"))["missed"] == 0
        assert (await bar.call("history.list"))["missed"] == 0
        await w.advance(1)
        w.sim.caller_calls("5000", "420777000004", "Jan Novy", abandon_after=3)
        await w.advance(5)
        assert (await bar.event("agent.missed"))["data"]["missed"] == 1

        # redial: one click is call.dial with the entry's number; the phone calls it
        phone.set_behaviour(answer_after=1)
        pending = bar.request("call.dial", [everything["calls"][0]["number"]])
        await w.advance(3)
        assert "result" in await bar.reply(pending)
        await bar.call("session.info")
        dialled = [m["data"] for m in bar.inbox if m["event"].startswith("call.")]
        assert dialled and dialled[-1]["number"] == "420602000003", [(m["event"], m["data"].get("number")) for m in bar.inbox]
        # another agent sees only its own phones' calls (agent 2's phone never rang)
        other = await ready_agent(w.server, 2)
        assert await other.call("history.list") == {"calls": [], "missed": 0, "seen": 0.0}
        bar.close()
        other.close()
    finally:
        await w.server.service.stopService()


def bar_user_id(w: Whole, i: int) -> int:
    from ucs import demo

    user = w.server.get_directory().user_by_username(demo.user_of(i)[0])
    assert user is not None
    return user.id


# -- per-queue figures ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_queue_figures_show_callers_waiting_and_the_longest_wait_per_queue(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"acw_seconds": 0})
    try:
        bar = await ready_agent(w.server, 1)
        await bar.call("agent.changeStatus", ["AUX", "Lunch"])  # nobody takes the callers
        await w.advance(1)
        empty = await bar.call("agent.queueFigures")
        assert [(q["name"], q["waiting"], q["oldest"]) for q in empty["queues"]] == [("Support", 0, None), ("Sales", 0, None)]
        w.sim.caller_calls("5000", "420777000001")
        await w.advance(20)
        w.sim.caller_calls("5000", "420777000002")
        w.sim.caller_calls("5001", "420777000003", abandon_after=15)
        await w.advance(10)
        figures = await bar.call("agent.queueFigures")
        by_name = {q["name"]: q for q in figures["queues"]}
        assert (by_name["Support"]["waiting"], by_name["Support"]["longestWait"]) == (2, pytest.approx(30, abs=0.5))
        assert (by_name["Sales"]["waiting"], by_name["Sales"]["longestWait"]) == (1, pytest.approx(10, abs=0.5))
        assert by_name["Support"]["oldest"] == pytest.approx(figures["now"] - 30, abs=0.5)
        # the bar hears that the count changed (then asks again); the figures follow the PBX
        assert (await bar.event("waitingCallers"))["data"]["waitingCallers"] >= 1
        await w.advance(6)  # the Sales caller gives up
        after = {q["name"]: (q["waiting"], q["oldest"]) for q in (await bar.call("agent.queueFigures"))["queues"]}
        assert after["Sales"] == (0, None) and after["Support"][0] == 2
        # READY: the agent answers one Support caller: one fewer waiting
        w.sim.phone("SIP/1001").set_behaviour(answer_after=1)
        await bar.call("agent.changeStatus", ["READY"])
        await w.advance(3)
        after = {q["name"]: q["waiting"] for q in (await bar.call("agent.queueFigures"))["queues"]}
        assert after["Support"] == 1, after
        bar.close()
    finally:
        await w.server.service.stopService()


# -- the store: the phones of each CDR (SQLite and PostgreSQL) -------------------------------------


def _cdr(uid: str, created: float, *legs: tuple[str, float | None]) -> dict[str, Any]:
    return {"uniqueid": uid, "created": created, "direction": "INCOMING",
            "data": {"legs": [{"device": d, "answered": a, "created": created + i} for i, (d, a) in enumerate(legs)]}}


@pytest_twisted.ensureDeferred
async def test_the_store_lists_the_cdrs_of_given_phones(store_url: str) -> None:
    from twisted.internet import reactor

    from ucs.store import open_store

    s = await open_store(store_url, reactor)
    try:
        await s.save_cdr(_cdr("c1", 100.0, ("SIP/carrier", 100.0), ("SIP/1001", None)))
        await s.save_cdr(_cdr("c2", 200.0, ("SIP/1001", 201.0), ("SIP/1002", 202.0)))
        await s.save_cdr(_cdr("c3", 300.0, ("SIP/carrier", 300.0), ("SIP/1002", 301.0), ("SIP/1002", None)))
        await s.save_cdr(_cdr("c4", 400.0))  # no legs: no phone
        mine = await s.list_cdrs(newest_first=True, devices=["SIP/1001"])
        assert [c["uniqueid"] for c in mine] == ["c2", "c1"]
        assert [c["uniqueid"] for c in await s.list_cdrs(devices=["SIP/1002", "SIP/1001"])] == ["c1", "c2", "c3"]
        assert await s.list_cdrs(devices=[]) == []
        # saved again (an account code set later): its phones are replaced, not doubled
        await s.save_cdr(_cdr("c1", 100.0, ("SIP/carrier", 100.0), ("SIP/1003", None)))
        assert [c["uniqueid"] for c in await s.list_cdrs(devices=["SIP/1001"])] == ["c2"]
        assert [c["uniqueid"] for c in await s.list_cdrs(devices=["SIP/1003"], limit=1)] == ["c1"]
        with pytest.raises(ValueError, match="list of device names"):
            await s.list_cdrs(devices="SIP/1001")  # type: ignore[arg-type]
    finally:
        await s.close()


@pytest_twisted.ensureDeferred
async def test_migration_2_fills_cdr_party_for_the_cdrs_already_stored(store_url: str) -> None:
    from test_store import execute
    from twisted.internet import reactor, threads

    from ucs.store import open_store

    s = await open_store(store_url, reactor)
    await s.save_cdr(_cdr("old1", 100.0, ("SIP/carrier", 100.0), ("SIP/1001", 101.0), ("SIP/1001", None)))
    await s.save_cdr(_cdr("old2", 200.0, ("SIP/1002", None)))
    await s.save_cdr({"uniqueid": "bare", "created": 300.0})  # no data: no phone
    await s.close()
    for statement in ("DROP TABLE cdr_party", "DELETE FROM schema_version WHERE version = 2"):
        await threads.deferToThread(execute, store_url, statement)  # as a UCS of before issue 16 left it

    s = await open_store(store_url, reactor)  # migration 2 again: the table, filled from the CDRs' legs
    try:
        assert [c["uniqueid"] for c in await s.list_cdrs(devices=["SIP/1001"])] == ["old1"]
        assert [c["uniqueid"] for c in await s.list_cdrs(devices=["SIP/1002", "SIP/carrier"])] == ["old1", "old2"]
    finally:
        await s.close()
