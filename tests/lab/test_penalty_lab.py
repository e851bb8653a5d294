"""Issue 19 on the real Asterisk: an agent's queue priority changed while they are
logged in reaches Asterisk at once (``QueuePenalty``, confirmed by Asterisk's own
``QueueMemberPenalty``), and a status change afterwards sends no ``QueuePenalty``.
The event Asterisk 20 sends is compared with the simulator's (``tests/test_sim_penalty.py``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import pytest_twisted
from labkit import Lab, LabUCS, phones_of

from ucs.sim.lab import lab as sim_lab

SIP = pytest.param("sip", marks=pytest.mark.chan_sip, id="sip")


def sim_penalty_event() -> list[str]:
    """The header names of the simulator's QueueMemberPenalty, in order."""
    sim = sim_lab()
    events: list[dict[str, str]] = []
    sim.subscribe(lambda ev: events.append(ev.message()))
    sim.queue_add("support", "SIP/1001", "Alice Agent")
    sim.queue_penalty("SIP/1001", 4, "support")
    (event,) = [m for m in events if m["Event"] == "QueueMemberPenalty"]
    return list(event)


@pytest.mark.parametrize("driver", [SIP, "pj"])
@pytest_twisted.ensureDeferred
async def test_a_priority_changed_while_logged_in_reaches_asterisk(driver: str, lab: Lab, ucs: LabUCS) -> None:
    a = phones_of(lab, driver)["a"]
    server = ucs.server
    seen: list[dict[str, Any]] = []
    link = server.get_pbx_link()
    original = link.eventReceived

    def record(message: Any) -> None:
        if str(message.get("Event", "")).startswith("QueueMember") and message.get("Interface") == a.device:
            seen.append(dict(message))
        original(message)

    link.eventReceived = record  # type: ignore[method-assign]
    bar = await ucs.agent(a, "AUX", "Lunch")
    directory = server.get_directory()
    user = directory.user_by_username(a.username)
    support, sales = directory.queue_by_asterisk_name("support"), directory.queue_by_asterisk_name("sales")
    assert user is not None and support is not None and sales is not None
    seen.clear()

    await directory.edit("users", user.id, {"queues": {str(support.id): {"priorities": 4}, str(sales.id): {"priorities": 0}}})
    model = server.get_pbx().queues
    await ucs.until(lambda: model["support"].members[a.device].penalty == 4, "UCS's model shows penalty 4 in support")
    await server.get_agents().settled()
    assert [(m["Event"], m["Queue"], m["Penalty"]) for m in seen] == [("QueueMemberPenalty", "support", "4")]
    (event,) = seen
    assert (event["Paused"], event["PausedReason"], event["Membership"]) == ("1", "Lunch", "dynamic")
    assert list(event) == sim_penalty_event()  # the simulator sends what Asterisk 20 sends
    shown = await lab.acli("queue show support")
    (line,) = [ln for ln in shown.splitlines() if f"({a.device})" in ln]
    assert "with penalty 4" in line and "paused:Lunch" in line
    assert "with penalty" not in next(ln for ln in (await lab.acli("queue show sales")).splitlines()
                                      if f"({a.device})" in ln)
    assert (await bar.call("state"))["status"] == "AUX"

    # a status change sends pauses only: the penalty stays as the directory has it
    seen.clear()
    await bar.call("agent.changeStatus", "READY")
    await bar.event("agent.status", where=lambda d: d["status"] == "READY")
    await server.get_agents().settled()
    assert sorted((m["Event"], m["Queue"]) for m in seen) == [("QueueMemberPause", "sales"), ("QueueMemberPause", "support")]
    assert re.search(r"with penalty 4\b", await lab.acli("queue show support"))
    assert ucs.warnings == []
