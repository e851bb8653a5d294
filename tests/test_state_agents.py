"""The state's list of agents (seed 002 ``agents``) is built once per change of
an agent and reused; it must still show every change at once."""

from __future__ import annotations

from pathlib import Path

import pytest_twisted
from serverkit import start_demo, working_agent


def listed(state: dict) -> dict[str, tuple[str, str]]:
    return {a["displayname"]: (a["status"], a["reason"]) for a in state["agents"]}


@pytest_twisted.ensureDeferred
async def test_the_agents_in_the_state_follow_logins_status_changes_renames_and_logouts(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        reg = server.get_registry()
        one = await working_agent(server, 1)
        first = await reg.call(one, "state")
        name1 = first["user"]["displayname"]
        assert listed(first) == {name1: ("READY", "")}

        two = await working_agent(server, 2)
        name2 = (await reg.call(two, "state"))["user"]["displayname"]
        assert listed(await reg.call(one, "state")) == {name1: ("READY", ""), name2: ("READY", "")}

        await reg.call(two, "agent.changeStatus", ["AUX", "Lunch"])
        assert listed(await reg.call(one, "state"))[name2] == ("AUX", "Lunch")
        await reg.call(two, "agent.changeStatus", ["AUX", "Break"])  # same status, another reason
        assert listed(await reg.call(one, "state"))[name2] == ("AUX", "Break")

        # What one caller does with its copy does not reach the next one.
        mine = await reg.call(one, "state")
        mine["agents"][0]["status"] = "SCRIBBLED"
        mine["agents"].clear()
        assert listed(await reg.call(one, "state"))[name1] == ("READY", "")

        await server.get_directory().edit("users", two.user.id, {"displayname": "Renamed Agent"})
        assert "Renamed Agent" in listed(await reg.call(one, "state"))

        await reg.call(two, "logout")
        assert listed(await reg.call(one, "state")) == {name1: ("READY", "")}
    finally:
        await server.service.stopService()
