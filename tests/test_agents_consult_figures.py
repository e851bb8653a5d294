"""The day's figures of a consultation: an internal call for the consulted agent.

Agent 1 answers a queue caller and consults agent 2 (``call.transfer``): every channel of
the consultation shares the caller's ``Linkedid``, so agent 2's phone has a leg in the
caller's queue call.  What a contact-center engineer expects of the figures:

- the consultation is agent 2's internal call, counted once (``in_calls_answered``), not an
  answered queue call: no queue talk time, nothing in the queue's column — also when the
  caller hangs up meanwhile and the two talk on (a new internal call of the same phones);
- once the transfer completes (or a conference joins them) and agent 2 talks with the
  customer, agent 2 has served the queue call: one answered queue call, counted once;
- agent 1 answered the queue call: one answered queue call;
- the queue was offered one call and it was answered once, whatever the consultation did;
  the supervisor's figures by agent say the same.

The whole server on a ``Clock`` (:func:`test_agents_wrapup.whole_server`), the simulated
Asterisk over AMI TCP, the agents' bars and a supervisor over WebSocket.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest_twisted
from test_agents_consult_wrapup import consultation, support_id
from test_agents_wrapup import Whole, whole_server
from test_supervisor import supervisor
from test_web_api import Client, user_id

#: The figures of the User object a consultation could touch.
CALLS = ("in_calls_answered", "in_calls_unanswered", "out_calls_answered", "out_calls_unanswered",
         "ringtime", "talktime", "in_talktime", "transferred")
QUEUE = ("answered", "unanswered", "talktime", "transferred")


async def figures(w: Whole, bar: Client) -> dict[str, Any]:
    """What the bar is told of its agent's calls today, and of its Support queue."""
    user = (await bar.call("state"))["user"]
    queue = user["queues"][str(support_id(w))]
    return {**{k: user[k] for k in CALLS}, "support": {k: queue[k] for k in QUEUE}}


async def supervised(w: Whole) -> tuple[dict[str, Any], dict[int, tuple[int, int]]]:
    """Today's Support row of the queue export, and each agent's (answered, talk time)."""
    sup = await supervisor(w.server)
    try:
        today = datetime.date.fromtimestamp(w.clock.seconds()).isoformat()
        rows = (await sup.call("stats.export", ["queue", today, today, "day"]))["rows"]
        support = next(r for r in rows if r["queue"] == "support")
        by_agent: dict[int, tuple[int, int]] = {}
        for r in (await sup.call("stats.export", ["agent", today, today, "day"]))["rows"]:
            by_agent[int(r["agent"])] = (int(r["answered"]), round(r["talktime"]))
        return {k: support[k] for k in ("offered", "answered", "abandoned")}, by_agent
    finally:
        sup.close()


@pytest_twisted.ensureDeferred
async def test_a_consultation_the_caller_hangs_up_during_is_the_consulted_agents_internal_call(
        tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, _, _):  # agent 1 answered at +1 s, agent 2 at +3 s
        w.sim.trunk().hangup()  # +4 s: the customer gives up while the agents talk
        await w.advance(5)
        w.sim.phone("SIP/1002").hangup()  # +9 s: the consultation ends
        await w.advance(1)
        assert not w.sim.phone("SIP/1001").channels and not w.server.get_call_tracker().active_calls()

        one, two = await figures(w, bar1), await figures(w, bar2)
        # agent 1: the queue call, answered, talked 3 s until the customer hung up; the
        # consultation's rest on the same leg is not a second call
        assert one == {"in_calls_answered": 1, "in_calls_unanswered": 0, "out_calls_answered": 0,
                       "out_calls_unanswered": 0, "ringtime": 1, "talktime": 3, "in_talktime": 3,
                       "transferred": 0,
                       "support": {"answered": 1, "unanswered": 0, "talktime": 3, "transferred": 0}}
        # agent 2: one internal call taken (6 s of it), counted once; no queue call
        assert two == {"in_calls_answered": 1, "in_calls_unanswered": 0, "out_calls_answered": 0,
                       "out_calls_unanswered": 0, "ringtime": 0, "talktime": 0, "in_talktime": 0,
                       "transferred": 0,
                       "support": {"answered": 0, "unanswered": 0, "talktime": 0, "transferred": 0}}

        queue, by_agent = await supervised(w)
        assert queue == {"offered": 1, "answered": 1, "abandoned": 0}
        uid1, uid2 = user_id(w.server, 1), user_id(w.server, 2)
        assert by_agent.get(uid1) == (1, 3)
        assert by_agent.get(uid2, (0, 0))[0] == 0  # the consultation is no answered queue call


@pytest_twisted.ensureDeferred
async def test_a_consultation_that_ends_without_a_transfer_is_an_internal_call(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, _, _):  # agent 1 answered at +1 s, agent 2 at +3 s
        await w.advance(3)
        await bar1.call("call.hangup")  # +7 s: agent 1 ends the consultation, back with the customer
        await w.advance(5)
        w.sim.trunk().hangup()  # +12 s
        await w.advance(1)

        one, two = await figures(w, bar1), await figures(w, bar2)
        assert (one["in_calls_answered"], one["out_calls_answered"], one["talktime"]) == (1, 0, 11)
        assert one["support"] == {"answered": 1, "unanswered": 0, "talktime": 11, "transferred": 0}
        assert two == {"in_calls_answered": 1, "in_calls_unanswered": 0, "out_calls_answered": 0,
                       "out_calls_unanswered": 0, "ringtime": 0, "talktime": 0, "in_talktime": 0,
                       "transferred": 0,
                       "support": {"answered": 0, "unanswered": 0, "talktime": 0, "transferred": 0}}
        queue, by_agent = await supervised(w)
        assert queue == {"offered": 1, "answered": 1, "abandoned": 0}
        assert by_agent.get(user_id(w.server, 1)) == (1, 11)
        assert by_agent.get(user_id(w.server, 2), (0, 0))[0] == 0


@pytest_twisted.ensureDeferred
async def test_a_completed_transfer_is_the_consulted_agents_answered_queue_call(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, _, _):  # agent 1 answered at +1 s, agent 2 at +3 s
        await bar1.call("call.finishTransfer")  # +4 s: the customer is agent 2's
        await w.advance(5)
        w.sim.trunk().hangup()  # +9 s
        await w.advance(1)

        one, two = await figures(w, bar1), await figures(w, bar2)
        # agent 1: answered, talked 3 s, transferred the call (inside the PBX)
        assert one == {"in_calls_answered": 1, "in_calls_unanswered": 0, "out_calls_answered": 0,
                       "out_calls_unanswered": 0, "ringtime": 1, "talktime": 3, "in_talktime": 3,
                       "transferred": 1,
                       "support": {"answered": 1, "unanswered": 0, "talktime": 3, "transferred": 1}}
        # agent 2: the transferred-in queue call, once: its leg from the consultation's answer on
        assert two == {"in_calls_answered": 1, "in_calls_unanswered": 0, "out_calls_answered": 0,
                       "out_calls_unanswered": 0, "ringtime": 1, "talktime": 6, "in_talktime": 6,
                       "transferred": 0,
                       "support": {"answered": 1, "unanswered": 0, "talktime": 6, "transferred": 0}}

        queue, by_agent = await supervised(w)
        assert queue == {"offered": 1, "answered": 1, "abandoned": 0}
        assert by_agent.get(user_id(w.server, 1)) == (1, 3)
        assert by_agent.get(user_id(w.server, 2)) == (1, 6)


@pytest_twisted.ensureDeferred
async def test_a_conference_with_the_customer_makes_it_the_consulted_agents_queue_call(tmp_path: Path) -> None:
    async with consultation(tmp_path) as (w, bar1, bar2, _, _):
        await bar1.call("call.conference")  # all three talk: agent 2 with the customer too
        await w.advance(1)
        await bar1.call("call.hangup")  # agent 1 leaves the conference
        await w.advance(3)
        w.sim.trunk().hangup()
        await w.advance(1)

        one, two = await figures(w, bar1), await figures(w, bar2)
        assert (one["in_calls_answered"], one["out_calls_answered"], one["support"]["answered"]) == (1, 0, 1)
        assert (two["in_calls_answered"], two["out_calls_answered"], two["support"]["answered"]) == (1, 0, 1)
        queue, by_agent = await supervised(w)
        assert queue == {"offered": 1, "answered": 1, "abandoned": 0}
        assert by_agent[user_id(w.server, 2)][0] == 1
