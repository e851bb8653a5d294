"""An agent works only while a bar of theirs is there (issue 16, points 4 and 8).

Through the whole server on a clock (:func:`test_agents_wrapup.whole_server`: real
sockets, the simulated Asterisk over real AMI TCP, time moved by the test): a bar whose
socket goes away and is not taken back within ``resume_window`` stops its agent taking
queue calls — out of the queues, or AUX, as ``[agents] session_expiry`` says — as the
simulated PBX's own queue members show; after login the agent is not ready until they
choose READY; changing phones keeps the status and moves the memberships; logging out
or changing phones is refused while a call is up on the phone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from serverkit import until
from test_agents_wrapup import Whole, whole_server
from test_web_api import CallError, Client, connect, ready_agent, ws_url
from twisted.internet import reactor
from twisted.web.client import Agent, readBody
from twisted.web.http_headers import Headers

from ucs import demo
from ucs.config import Config
from ucs.constants import AgentStatus

WINDOW = Config().web.resume_window  # 120 s: the default, as on a real floor


def members(w: Whole, device: str) -> dict[str, tuple[bool, str]]:
    """``device``'s memberships as the simulated Asterisk has them: queue → (paused, reason)."""
    out = {}
    for name, queue in w.sim.queues.items():
        m = queue.members.get(device)
        if m is not None:
            out[name] = (bool(m.paused), m.reason if m.paused else "")
    return out


def drop(bar: Client) -> None:
    """The network goes away under the bar: no close frame (a closed laptop, a lost Wi-Fi)."""
    assert bar.proto is not None
    bar.proto.transport.abortConnection()


async def detached(w: Whole, n: int = 1) -> None:
    hub = w.server.get_web_service().hub
    await until(lambda: hub.stats()["detached"] == n)


@pytest_twisted.ensureDeferred
async def test_a_bar_that_never_comes_back_logs_its_agent_out_of_the_queues(tmp_path: Path) -> None:
    w = await whole_server(tmp_path)
    try:
        bar = await ready_agent(w.server, 1)
        device = demo.line_of(1)[0]
        assert members(w, device) == {"support": (False, ""), "sales": (False, "")}
        drop(bar)
        await detached(w)
        await w.advance(WINDOW - 1)  # still within the window: a reconnecting bar would take it back
        assert members(w, device) == {"support": (False, ""), "sales": (False, "")}
        await w.advance(2)
        assert members(w, device) == {}  # out of every queue, in Asterisk's own state
        assert w.server.get_agents().get(1) is None
        # Three minutes after the tab went away a caller comes: the agent's phone never rings.
        w.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await w.advance(30)
        assert w.rang(device) == []
        # The agent comes back: a fresh login, and the agent is in the queues again.
        again = await ready_agent(w.server, 1)
        assert set(members(w, device)) == {"support", "sales"}
        again.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_with_session_expiry_aux_the_agent_stays_in_the_queues_paused(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, agents={"session_expiry": "aux", "session_expiry_reason": "Away"})
    try:
        bar = await ready_agent(w.server, 1)
        device = demo.line_of(1)[0]
        drop(bar)
        await detached(w)
        await w.advance(WINDOW + 1)
        assert members(w, device) == {"support": (True, "Away"), "sales": (True, "Away")}
        agent = w.server.get_agents().agent(1)
        assert (agent.status, agent.reason) == (AgentStatus.AUX, "Away")
        w.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await w.advance(30)
        assert w.rang(device) == []
        # Logging in again finds the agent as it was left: working, not ready, "Away".
        c = await connect(ws_url(w.server))
        res = await c.call("login", list(demo.user_of(1)))
        assert res["state"] == "READY"
        state = await c.call("state")
        assert (state["status"], state["reason"]) == ("AUX", "Away")
        c.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_bar_that_comes_back_in_time_or_another_open_tab_keeps_the_agent(tmp_path: Path) -> None:
    w = await whole_server(tmp_path)
    try:
        device = demo.line_of(1)[0]
        bar = await ready_agent(w.server, 1)
        sid = bar.hello["sid"]
        drop(bar)
        await detached(w)
        await w.advance(WINDOW - 10)
        back = await connect(ws_url(w.server))
        assert (await back.call("session.resume", [sid]))["state"] == "READY"
        await w.advance(WINDOW)
        assert members(w, device) == {"support": (False, ""), "sales": (False, "")}
        # A second tab is open: the first one going away for good changes nothing.
        tab2 = await connect(ws_url(w.server))
        assert (await tab2.call("login", list(demo.user_of(1))))["state"] == "READY"
        drop(back)
        await detached(w)
        await w.advance(WINDOW + 1)
        assert members(w, device) == {"support": (False, ""), "sales": (False, "")}
        assert w.server.get_agents().agent(1).status == AgentStatus.READY
        tab2.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_after_login_the_agent_is_not_ready_until_they_choose_ready(tmp_path: Path) -> None:
    defaults = Config().agents
    assert (defaults.initial_status, defaults.initial_reason) == ("aux", "Login")
    w = await whole_server(tmp_path, agents={"initial_status": defaults.initial_status})
    try:
        c = await connect(ws_url(w.server))
        await c.call("login", list(demo.user_of(1)))
        await c.call("identifier", [demo.line_of(1)[1]])
        state = await c.call("provision")
        status = (await c.event("agent.status"))["data"]
        assert (status["status"], status["reason"]) == ("AUX", "Login")
        assert (state["status"], state["reason"]) == ("AUX", "Login")
        device = demo.line_of(1)[0]
        assert members(w, device) == {"support": (True, "Login"), "sales": (True, "Login")}
        w.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await w.advance(5)
        assert w.rang(device) == []
        await c.call("agent.changeStatus", ["READY"])
        await w.advance(1)
        assert w.rang(device) != []  # the waiting caller is offered at once
        c.close()
    finally:
        await w.server.service.stopService()


async def second_phone_for_agent1(w: Whole) -> None:
    """agent1 may also pair the demo's second phone (a hot desk)."""
    directory = w.server.get_directory()
    user = directory.user_by_username("agent1")
    line2 = directory.line_by_identifier(demo.line_of(2)[1])
    await directory.edit("users", user.id, {"lines": [*[ln.id for ln in directory.lines_of(user)], line2.id]})


@pytest_twisted.ensureDeferred
async def test_changing_phones_keeps_the_status_and_moves_the_queues(tmp_path: Path) -> None:
    w = await whole_server(tmp_path)
    try:
        await second_phone_for_agent1(w)
        old, new = demo.line_of(1)[0], demo.line_of(2)[0]
        bar = await ready_agent(w.server, 1)
        await bar.call("agent.changeStatus", ["AUX", "Meeting"])
        support = next(q for q in (await bar.call("state"))["queues"] if q["asterisk_name"] == "support")
        await bar.call("agent.suspend", [support["queue_id"]])
        await bar.call("identify")
        # Choosing: the agent still works on the old phone, status and queues as they were.
        assert members(w, old) == {"support": (True, "suspended"), "sales": (True, "Meeting")}
        assert (await bar.call("session.info"))["state"] == "IDENTIFY"
        await bar.call("identifier", [demo.line_of(2)[1]])
        state = await bar.call("provision")
        assert (state["status"], state["reason"], state["device"]["device"]) == ("AUX", "Meeting", new)
        assert members(w, old) == {}
        assert members(w, new) == {"support": (True, "suspended"), "sales": (True, "Meeting")}
        agent = w.server.get_agents().agent(1)
        assert (agent.status, agent.reason, agent.device) == (AgentStatus.AUX, "Meeting", new)
        assert "agent.logout" not in bar.events()
        bar.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_logout_and_changing_phones_are_refused_while_a_call_is_up(tmp_path: Path) -> None:
    w = await whole_server(tmp_path)
    try:
        bar = await ready_agent(w.server, 1)
        device = demo.line_of(1)[0]
        w.sim.phone(device).set_behaviour(answer_after=1)
        w.sim.caller_calls("5000", "420777000001", hangup_after=600)
        await w.advance(3)
        assert w.server.get_agents().agent(1).busy
        for method in ("logout", "identify"):
            with pytest.raises(CallError) as e:
                await bar.call(method)
            assert e.value.error["error"] == "invalid_state"
            assert f"{method}: your phone ({device}) has a call; hang up or transfer it first" in e.value.error["message"]
        # The call's controls are all there: the agent ends it, then logs out.
        await bar.call("call.hangup")
        await w.advance(1)
        await bar.call("logout")
        assert members(w, device) == {}
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_without_a_phone_a_status_change_says_a_phone_is_needed(tmp_path: Path) -> None:
    w = await whole_server(tmp_path)
    try:
        c = await connect(ws_url(w.server))
        await c.call("login", list(demo.user_of(1)))  # withoutDevice: no phone paired
        with pytest.raises(CallError) as e:
            await c.call("agent.changeStatus", ["READY"])
        assert e.value.error["error"] == "invalid_state"
        assert "it needs a phone: choose one first" in e.value.error["message"]
        c.close()
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_origin_tells_a_page_whether_its_origin_may_connect(tmp_path: Path) -> None:
    w = await whole_server(tmp_path, web={"allowed_origins": ["https://crm.example.com"]})
    try:
        base = w.server.get_web_service().url
        agent = Agent(reactor)

        async def ask(origin: str) -> tuple[dict[str, Any], Any]:
            resp = await agent.request(b"GET", (base + "origin").encode(), Headers({"Origin": [origin]}))
            return json.loads(await readBody(resp)), resp.headers

        body, headers = await ask("https://evil.example.net")
        assert body == {"origin": "https://evil.example.net", "allowed": False}
        assert headers.getRawHeaders(b"access-control-allow-origin") == [b"*"]
        body, _ = await ask("https://crm.example.com")
        assert body["allowed"] is True
    finally:
        await w.server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_stopping_ucs_is_not_a_bar_gone_for_good(tmp_path: Path) -> None:
    """UCS stopping closes every bar; those closes arrive after the hub stopped and must not
    start the resume window: the agents were not abandoned (a restart brings them back),
    and a timer left behind would log them out of a stopped server minutes later."""
    w = await whole_server(tmp_path)
    bar = await ready_agent(w.server, 1)
    await w.server.service.stopService()
    await bar.closed
    w.clock.advance(WINDOW + 10)  # the AMI link is down now: the clock alone
    assert w.server.get_agents().get(1) is not None
    assert [c for c in w.clock.getDelayedCalls() if "_expire" in repr(c.func)] == []
