"""TeamWatch on plain objects: no reactor, no bus."""

from __future__ import annotations

from typing import Any

from ucs.constants import AgentStatus
from ucs.directory.model import AuxReason, QueueMembership, Team, User
from ucs.iserver.teams import TeamWatch


class FakeDirectory:
    def __init__(self) -> None:
        self.users: dict[int, User] = {}
        self.teams: dict[int, Team] = {}
        self.auxreasons: dict[int, AuxReason] = {7: AuxReason(7, "Lunch")}

    def members_of_team(self, team_id: int) -> list[User]:
        return [u for u in self.users.values() if any(m.team_id == team_id for m in u.queues.values())]


class FakeAgent:
    def __init__(self, status: AgentStatus, reason: str = "") -> None:
        self.status, self.reason = status, reason


class FakeAgents(dict[int, Any]):
    pass


def names(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["name"].rsplit(".", 1)[1] for m in msgs]


def test_begin_refresh_and_status() -> None:
    d, agents = FakeDirectory(), FakeAgents()
    d.teams[1] = Team(1, "Blue")
    d.users[1] = User(1, "ann", firstname="Ann", queues={1: QueueMembership(team_id=1)})
    d.users[2] = User(2, "bob", queues={1: QueueMembership(team_id=1, supervisor=True)})
    d.users[3] = User(3, "cy", queues={1: QueueMembership()})
    d.users[4] = User(4, "dee", supervisor=True, queues={1: QueueMembership(team_id=1)})
    agents[1] = FakeAgent(AgentStatus.READY)
    w = TeamWatch(1, d, agents)
    [added] = w.begin()
    assert added["name"] == "report.teamstatus.teamadded" and added["data"]["agentId"] == "ann"
    assert added["data"]["team"]["members"] == [
        {"memberId": "ann", "memberType": "Agent", "memberName": "Ann", "status": "ready", "reason": "",
         "reasonName": ""},
        # supervises this team through its membership: the team's lead
        {"memberId": "bob", "memberType": "TeamLead", "memberName": "bob", "status": "not_ready",
         "reason": "", "reasonName": "Logged out"},
        # a supervisor user
        {"memberId": "dee", "memberType": "Supervisor", "memberName": "dee", "status": "not_ready",
         "reason": "", "reasonName": "Logged out"},
    ]
    assert w.refresh() == []

    agents[2] = FakeAgent(AgentStatus.ACW, "")
    [st] = w.status_changed(2)
    assert st["data"]["team"]["members"][0]["status"] == "ACW"
    assert w.status_changed(2) == [] and w.status_changed(3) == []
    agents[1] = FakeAgent(AgentStatus.AUX, "Lunch")
    [st] = w.status_changed(1)
    assert st["data"]["team"]["members"][0]["reason"] == "7"  # the AUX reason's code
    assert st["data"]["team"]["members"][0]["reasonName"] == "Lunch"
    agents[1] = FakeAgent(AgentStatus.AUX, "Dentist")  # not one of the directory's reasons: no code
    [st] = w.status_changed(1)
    assert st["data"]["team"]["members"][0]["reason"] == "" and st["data"]["team"]["members"][0]["reasonName"] == "Dentist"

    d.users[3].queues[1].team_id = 1
    d.teams[1].name = "Green"
    d.users[2].queues[1].team_id = None
    out = w.refresh()
    assert names(out) == ["teamchanged", "memberadded", "memberremoved"]
    assert out[2]["data"]["team"]["members"] == [{"memberId": "bob"}]

    d.teams[2] = Team(2, "Red")
    d.users[1].queues[2] = QueueMembership(team_id=2)
    assert names(w.refresh()) == ["teamadded"]
    del d.teams[1]
    out = w.refresh()
    assert names(out) == ["teamremoved"] and out[0]["data"]["team"] == {"teamId": "1", "teamName": "Green"}
    del d.users[1]
    assert names(w.refresh()) == ["teamremoved"]


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.aborted = False

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self, code: int, reason: str) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


def test_slow_client_is_queued_then_dropped() -> None:
    from ucs.iserver.processor import Controller

    class Box:
        max_client_buffer = 100
        max_message_size = 1024 * 1024
        controllers: set[Any] = set()

    t = FakeTransport()
    c = Controller(Box(), t)  # type: ignore[arg-type]
    c.open = True
    c.send({"name": "a"})
    c.pauseProducing()
    c.send({"name": "b"})
    assert len(t.sent) == 1
    c.resumeProducing()
    assert len(t.sent) == 2 and not t.aborted
    c.pauseProducing()
    for _ in range(20):
        c.send({"name": "x" * 10})
    assert t.aborted and c.dropped
