"""A whole working day on the fake clock — statuses, queue calls answered,
missed, transferred inside and outside, outgoing calls, a campaign call,
a suspension, a pause on the phone — and every figure checked to the second;
then the midnight reset in Europe/Prague."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from test_agents_harness import close, prague, sqlite_url, stack_on

from ucs.agents.stats import Days
from ucs.constants import AgentStatus
from ucs.directory.model import User

READY, AUX, ACW = AgentStatus.READY, AgentStatus.AUX, AgentStatus.ACW


@pytest_twisted.ensureDeferred
async def test_a_day_of_figures_then_midnight(tmp_path: Any) -> None:
    s = await stack_on(sqlite_url(tmp_path), start=prague(2025, 3, 10, 7, 0, 0))
    try:
        agents = await s.start(acw_seconds=10)
        other = await s.other_client()
        alice_user: User = s.user("alice")
        uid = alice_user.id
        alice = await agents.login(alice_user, s.line("SIP/1001"))
        phone, bob_phone, trunk = s.sim.phone("SIP/1001"), s.sim.phone("SIP/1002"), s.sim.trunk()
        bob_phone.set_behaviour(answer_after=1, hangup_after=10)

        async def at(hour: int, minute: int = 0, second: int = 0) -> None:
            await s.advance_to(prague(2025, 3, 10, hour, minute, second))

        # 08:00 a support call: rings 5 s, 60 s of talk, then 10 s of wrap-up
        await at(8)
        phone.set_behaviour(answer_after=5)
        s.sim.caller_calls("5000", "420777000001", hangup_after=60)
        await at(8, 1, 5)
        assert alice.status == ACW
        await at(8, 1, 15)
        assert alice.status == READY

        # 09:00 half an hour of lunch
        await at(9)
        await agents.change_status(uid, "AUX", "Lunch")
        await at(9, 30)
        await agents.change_status(uid, "READY")

        # 10:00 a sales call she does not pick up: the customer gives up after 12 s of ringing
        await at(10)
        phone.set_behaviour(answer_after=None)
        s.sim.caller_calls("5001", "420777000002", abandon_after=12)
        await at(10, 0, 30)
        assert alice.status == READY and not phone.channels

        # 11:00 a support call, 3 s ringing, 20 s talking, blind-transferred to Bob (inside)
        await at(11)
        phone.set_behaviour(answer_after=3)
        s.sim.caller_calls("5000", "420777000003")
        await at(11, 0, 23)
        s.sim.blind_transfer(phone.channels[0], "1002", "internal")
        await at(11, 0, 33)
        assert alice.status == READY
        await at(11, 1)
        assert not bob_phone.channels and not s.tracker.active_calls()  # Bob took it and hung up

        # 12:00 a support call, 2 s ringing, 40 s talking, blind-transferred outside (through the trunk)
        await at(12)
        phone.set_behaviour(answer_after=2)
        trunk.set_behaviour(answer_after=1, hangup_after=5)
        s.sim.caller_calls("5000", "420777000004")
        await at(12, 0, 42)
        s.sim.blind_transfer(phone.channels[0], "0420777987654", "internal")
        await at(12, 1)
        assert alice.status == READY and not s.tracker.active_calls()

        # 13:00 she calls a customer: 4 s until the answer, 30 s of talk (not a campaign: no wrap-up)
        await at(13)
        trunk.set_behaviour(answer_after=4, hangup_after=30)
        phone.dial("0420777987654")
        await at(13, 1)
        assert alice.status == READY
        # 13:30 a campaign call for the sales queue (call control marks it): 6 s + 20 s, wrap-up
        await at(13, 30)
        trunk.set_behaviour(answer_after=6, hangup_after=20)
        phone.dial("0420777987655")
        await s.settle()
        (campaign,) = s.tracker.calls_of_device("SIP/1001")
        campaign.data["outbound_id"] = 2
        await at(13, 30, 26)
        assert alice.status == ACW
        # 14:00 nobody answers her call: Dial gives up after 30 s
        await at(14)
        trunk.set_behaviour(answer_after=None)
        phone.dial("0420777987656")
        await at(14, 1)
        assert not phone.channels

        # 15:00 an hour's meeting; 16:30 ten minutes suspended from sales; 17:00 half an hour OFFLINE
        await at(15)
        await agents.change_status(uid, "AUX", "Meeting")
        await at(16)
        await agents.change_status(uid, "READY")
        await at(16, 30)
        await agents.suspend(uid, 2)
        await at(16, 40)
        await agents.resume(uid, 2)
        await at(17)
        await agents.change_status(uid, "OFFLINE")
        await at(17, 30)
        await agents.change_status(uid, "READY")
        # 18:00 she asks for wrap-up time herself; 19:00 a quarter of an hour's coffee, paused on the phone
        await at(18)
        await agents.change_status(uid, "ACW")
        await at(18, 0, 10)
        assert alice.status == READY
        await at(19)
        await other.action("QueuePause", Interface="SIP/1001", Paused="true", Reason="Coffee")
        await at(19, 15)
        await other.action("QueuePause", Interface="SIP/1001", Paused="false")
        await at(23)

        # 16 h: 50 s ACW, 6300 s AUX, 1800 s OFFLINE, the rest READY; the phone in use 232 s of it
        figures = alice.to_dict()
        ready = 16 * 3600 - 50 - 6300 - 1800
        expected = {
            "readytime": ready, "idletime": ready - (65 + 12 + 23 + 42 + 34 + 26 + 30),
            "auxtime": 6300, "auxtimes": {"Lunch": 1800, "Meeting": 3600, "Coffee": 900}, "acwtime": 50,
            "in_calls_answered": 3, "in_calls_unanswered": 1, "out_calls_answered": 2, "out_calls_unanswered": 1,
            "ringtime": 5 + 12 + 3 + 2 + 6, "talktime": 60 + 20 + 40 + 20,
            "in_ringtime": 5 + 12 + 3 + 2, "in_talktime": 60 + 20 + 40, "out_ringtime": 6, "out_talktime": 20,
            "transferred": 2, "transferred_external": 1,
        }
        assert {k: figures[k] for k in expected} == expected
        queue_keys = ("answered", "unanswered", "ringtime", "talktime", "transferred", "transferred_external",
                      "suspendtime")
        assert {q: {k: figures["queues"][q][k] for k in queue_keys} for q in (1, 2)} == {
            1: {"answered": 3, "unanswered": 0, "ringtime": 10, "talktime": 120, "transferred": 2,
                "transferred_external": 1, "suspendtime": 0},
            2: {"answered": 1, "unanswered": 1, "ringtime": 18, "talktime": 20, "transferred": 0,
                "transferred_external": 0, "suspendtime": 600},
        }

        # the figures are in the store too (saved as they change and every minute)
        await agents.flush()
        stored = await s.store.kv_get("agents.stats", str(uid))
        assert stored["day"] == "2025-03-10" and stored["transferred_external"] == 1

        # midnight in Prague (23:00 UTC): a new day starts from zero
        await s.advance_to(prague(2025, 3, 10, 23, 59, 59))
        assert alice.to_dict()["readytime"] == ready + 3599
        await s.advance_to(prague(2025, 3, 11, 0, 0, 30))
        fresh = alice.to_dict()
        assert (fresh["readytime"], fresh["idletime"]) == (30, 30)
        assert all(fresh[k] == 0 for k in expected if k not in ("readytime", "idletime", "auxtimes"))
        assert fresh["auxtimes"] == {}
        assert all(v == 0 for q in (1, 2) for k, v in fresh["queues"][q].items() if k in queue_keys)
        await agents.flush()
        stored = await s.store.kv_get("agents.stats", str(uid))
        assert stored["day"] == "2025-03-11" and stored["ringtime"] == 0
    finally:
        await close(s)


def test_midnights_follow_the_time_zone_through_dst() -> None:
    days = Days("Europe/Prague")
    noon = prague(2025, 3, 29, 12)
    first = days.next_midnight(noon)
    assert first == prague(2025, 3, 30, 0) and days.day(first) == "2025-03-30"
    assert days.next_midnight(first) - first == 23 * 3600  # clocks go forward that night
    assert days.start_of_day(noon) == prague(2025, 3, 29, 0)
    assert Days("UTC").next_midnight(noon) - first == 3600
