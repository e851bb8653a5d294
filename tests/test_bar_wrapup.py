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
