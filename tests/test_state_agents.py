"""The state's list of agents (seed 002 ``agents``) is built once per change of
an agent and reused; it must still show every change at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from serverkit import start_demo, working_agent
from test_web_api import ready_agent

from ucs import demo


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

        # The list is shared until an agent changes, so it cannot be changed by a caller.
        mine = await reg.call(one, "state")
        assert isinstance(mine["agents"], tuple)
        with pytest.raises(AttributeError):
            mine["agents"].clear()

        await server.get_directory().edit("users", two.user.id, {"displayname": "Renamed Agent"})
        assert "Renamed Agent" in listed(await reg.call(one, "state"))

        await reg.call(two, "logout")
        assert listed(await reg.call(one, "state")) == {name1: ("READY", "")}
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_a_bar_gets_the_agents_in_its_state_as_json_whatever_their_names(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        bar = await ready_agent(server, 1)
        two = await working_agent(server, 2)
        tricky = 'Zoë "Q" \\ fragment-0 </script>'
        await server.get_directory().edit("users", two.user.id, {"displayname": tricky})
        state = await bar.call("state")
        assert isinstance(state["agents"], list)
        assert {a["displayname"]: a["status"] for a in state["agents"]} == {
            state["user"]["displayname"]: "READY", tricky: "READY"}
        assert state["user"]["username"] == "agent1" and state["status"] == "READY"
        await server.get_registry().call(two, "agent.changeStatus", ["AUX", "Lunch"])
        again = await bar.call("state")
        assert {a["displayname"]: (a["status"], a["reason"]) for a in again["agents"]}[tricky] == ("AUX", "Lunch")
    finally:
        await server.service.stopService()


@pytest_twisted.ensureDeferred
async def test_an_agent_sees_the_agents_of_its_queues_a_supervisor_those_it_supervises(tmp_path: Path) -> None:
    server = await start_demo(tmp_path)
    try:
        reg, directory = server.get_registry(), server.get_directory()
        support, sales = (directory.queue_by_asterisk_name(name) for _, name, _number in demo.QUEUES)
        sessions = [await working_agent(server, n) for n in (1, 2, 3, 4)]
        names = [(await reg.call(s, "state"))["user"]["displayname"] for s in sessions]
        # agent1 in both queues, agent2 in Support only, agent3 in Sales only, agent4 in none.
        for n, queues in ((2, [support]), (3, [sales]), (4, [])):
            await directory.edit("users", sessions[n - 1].user.id,
                                 {"queues": {str(q.id): {"priorities": 0} for q in queues}})

        async def seen(n: int) -> set[str]:
            return set(listed(await reg.call(sessions[n - 1], "state")))

        assert await seen(1) == {names[0], names[1], names[2]}
        assert await seen(2) == {names[0], names[1]}
        assert await seen(3) == {names[0], names[2]}
        assert await seen(4) == {names[3]}
        # A supervisor sees the agents of its queues and of the teams it supervises, not the
        # whole centre (issue 14, point 10); a superuser sees every agent.
        await directory.edit("users", sessions[1].user.id, {"supervisor": True})
        assert await seen(2) == {names[0], names[1]}
        red = (await directory.add("teams", {"name": "Red"})).id
        await directory.edit("users", sessions[1].user.id, {"queues": {str(support.id): {"team_id": red}}})
        await directory.edit("users", sessions[2].user.id, {"queues": {str(sales.id): {"team_id": red}}})
        assert await seen(2) == {names[0], names[1], names[2]}
        await directory.edit("users", sessions[3].user.id, {"superuser": True})
        assert await seen(4) == set(names)
    finally:
        await server.service.stopService()
