"""The bar's transfer directory (``agents.directory``, issue 16): colleagues with
their number and live presence, and the queues, in the scope of the state's agents."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from serverkit import start_demo, until, working_agent

from ucs import demo
from ucs.api.state import line_number


def test_a_lines_number() -> None:
    assert line_number("SIP/1001") == "1001" and line_number("PJSIP/2003") == "2003"
    assert line_number("PJSIP/webrtc1") == "" and line_number("") == ""


@pytest_twisted.ensureDeferred
async def test_colleagues_with_number_and_presence_and_the_queues(tmp_path: Path) -> None:
    server = await start_demo(tmp_path, demo={"enabled": True, "call_rate": 0, "phones": 3})
    try:
        reg, directory = server.get_registry(), server.get_directory()
        one, two, three = [await working_agent(server, n) for n in (1, 2, 3)]
        seen = await reg.call(one, "agents.directory")
        assert [q["number"] for q in seen["queues"]] == ["5001", "5000"]  # by name: Sales, Support
        assert {q["name"] for q in seen["queues"]} == {label for label, _, _ in demo.QUEUES}
        mine = {a["number"]: a for a in seen["agents"]}
        assert set(mine) == {"1002", "1003"}  # not agent1 itself
        assert mine["1002"]["status"] == "READY" and mine["1002"]["onCall"] is False
        assert mine["1002"]["device"] == "SIP/1002"

        await reg.call(two, "agent.changeStatus", ["AUX", "Lunch"])
        mine = {a["number"]: a for a in (await reg.call(one, "agents.directory"))["agents"]}
        assert (mine["1002"]["status"], mine["1002"]["reason"]) == ("AUX", "Lunch")

        # On a call: a customer reaches agent 3's phone.
        sim = server.get_demo_pbx().sim
        await reg.call(two, "agent.changeStatus", ["READY"])
        for n in (1, 2):
            await reg.call(one if n == 1 else two, "agent.changeStatus", ["AUX", "Break"])
        sim.phone("SIP/1003").set_behaviour(answer_after=0.2)
        sim.caller_calls("5000", "420777123456", "Jana Novak")
        tracker = server.get_call_tracker()
        await until(lambda: bool(tracker.calls_of_device("SIP/1003")), timeout=10)
        mine = {a["number"]: a for a in (await reg.call(one, "agents.directory"))["agents"]}
        assert mine["1003"]["onCall"] is True and mine["1002"]["onCall"] is False

        # The scope of the state's agents: agent2 only in Support does not see agent3 only in Sales.
        support, sales = (directory.queue_by_asterisk_name(name) for _, name, _ in demo.QUEUES)
        await directory.edit("users", two.user.id, {"queues": {str(support.id): {"priorities": 0}}})
        await directory.edit("users", three.user.id, {"queues": {str(sales.id): {"priorities": 0}}})
        numbers = {a["number"] for a in (await reg.call(two, "agents.directory"))["agents"]}
        assert numbers == {"1001"}
    finally:
        await server.service.stopService()
